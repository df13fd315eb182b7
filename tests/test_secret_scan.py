"""No secret leaks: known fake token and key values, looked for everywhere they could land.

A local deployment (offline model, 127.0.0.1) is served with a fake API key and a fake Hugging
Face token; the ``flexaudio`` command (the installed console script) then generates, runs a
batch, prints curl and models, and fails in the usual ways (bad parameter, wrong key, a URL
with a password in it, nothing listening). Scanned for every fake value: the commands' stdout
and stderr, the deployment's printed output, Python log records of every level, exception
texts and tracebacks, reprs, the endpoint's log, and every file written (clips with their
metadata, manifests, state files). The only files allowed to hold a value are the state files
meant to (the saved token and the endpoint record), and their mode must be 0600.

The notebooks' outputs and files get the same scan in tests/test_notebook_outputs.py (run by
``make notebooks``); the loopback bind is checked in tests/test_endpoint.py.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import shutil
import stat
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from starlette.requests import Request

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.deploy import connect
from flexaudio_helpers.deploy.server_process import free_port
from flexaudio_helpers.errors import AuthenticationError, EndpointUnavailable
from flexaudio_helpers.serving import app as serving_app

FAKE_KEY = f"fake-scan-api-key-{secrets.token_hex(8)}"
FAKE_TOKEN = f"hf_fakeScanToken{secrets.token_hex(8)}"
WRONG_KEY = f"fake-wrong-key-{secrets.token_hex(8)}"
URL_PASSWORD = f"fakeUrlPassword{secrets.token_hex(6)}"
SECRETS = (FAKE_KEY, FAKE_TOKEN, WRONG_KEY, URL_PASSWORD)


def leaks(text: str | bytes) -> list[str]:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return [secret for secret in SECRETS if secret.encode() in data]


def flexaudio_command() -> str:
    found = Path(sys.executable).parent / "flexaudio"
    return str(found) if found.exists() else shutil.which("flexaudio")


@pytest.fixture
def served(tmp_path, monkeypatch, capfd):
    """A local deployment named "scan" on the offline model, with the fake key and token."""
    monkeypatch.setenv("FLEXAUDIO_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FLEXAUDIO_TARGET", "offline")
    monkeypatch.setenv("FLEXAUDIO_API_KEY", FAKE_KEY)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    for name in ("INFERENCE_URL", "INFERENCE_API_KEY", "FLEXAUDIO_MODEL"):
        monkeypatch.delenv(name, raising=False)
    deployment = connect()
    deployment.poll_interval = 0.2
    deployment.create_secret("HF_TOKEN", FAKE_TOKEN)
    deployment.serve("scan", hf_token_secret="HF_TOKEN")
    endpoint = deployment.wait_until_ready("scan", timeout=180)
    assert endpoint.api_key == FAKE_KEY
    yield deployment, endpoint
    deployment.stop("scan")


def run_cli(*arguments: str, cwd: Path, **environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_TOKEN": FAKE_TOKEN, **environment}
    return subprocess.run(
        [flexaudio_command(), *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # a deployment of its own with fake secrets, and the CLI as processes
def test_no_secret_in_outputs_logs_exceptions_or_files(served, tmp_path, capfd, caplog):
    deployment, endpoint = served
    caplog.set_level(logging.DEBUG)  # every record of every logger, httpx and httpcore included
    seen: dict[str, str] = {}  # where -> text, all scanned at the end
    out = tmp_path / "out"
    out.mkdir()
    env = {"INFERENCE_URL": endpoint.url, "INFERENCE_API_KEY": FAKE_KEY}

    # The command line, working and failing.
    (out / "prompts.txt").write_text("scan rain\nscan wind\n")
    runs = {
        "generate": (["generate", "scan piano", "-o", "clip.wav", "--steps", "2", "--seconds", "1"], env, 0),
        "generate flac": (["generate", "scan", "-o", "clip.flac", "--steps", "2", "--seed", "3"], env, 0),
        "batch": (["batch", "prompts.txt", "-o", "batch", "--steps", "2", "--no-progress"], env, 0),
        "curl": (["curl", "scan piano", "--steps", "2"], env, 0),
        "models": (["models"], env, 0),
        "bad parameter": (["generate", "x", "-o", "x.wav", "--steps", "0"], env, 2),
        "wrong key": (
            ["generate", "x", "-o", "x.wav", "--steps", "2", "--retries", "0"],
            {**env, "INFERENCE_API_KEY": WRONG_KEY},
            1,
        ),
        "password in url": (
            ["models", "--retries", "0"],
            {**env, "INFERENCE_URL": endpoint.url.replace("//", f"//user:{URL_PASSWORD}@")},
            None,  # whatever the endpoint makes of it, the password must not be printed
        ),
        "nothing listening": (
            ["models", "--retries", "1"],
            {**env, "INFERENCE_URL": f"http://127.0.0.1:{free_port()}"},
            1,
        ),
    }
    for name, (arguments, environment, expected_code) in runs.items():
        result = run_cli(*arguments, cwd=out, **environment)
        if expected_code is not None:
            assert result.returncode == expected_code, (name, result.stdout, result.stderr)
        seen[f"flexaudio {name} stdout"] = result.stdout
        seen[f"flexaudio {name} stderr"] = result.stderr
    assert "$INFERENCE_API_KEY" in seen["flexaudio curl stdout"]

    # In-process: reprs, and the exceptions a notebook would show, tracebacks included.
    seen["reprs"] = " ".join(
        [repr(endpoint), str(endpoint), repr(AudioClient(endpoint.url, FAKE_KEY)), repr(deployment)]
    )
    with (
        AudioClient(endpoint.url, WRONG_KEY, max_retries=0) as client,
        pytest.raises(AuthenticationError) as refused,
    ):
        client.generate("x", num_inference_steps=2)
    nowhere = f"http://127.0.0.1:{free_port()}"
    with (
        AudioClient(nowhere, FAKE_KEY, max_retries=0) as client,
        pytest.raises(EndpointUnavailable) as unreachable,
    ):
        client.generate("x", num_inference_steps=2)
    for caught in (refused, unreachable):
        seen[f"exception {caught.typename}"] = "".join(traceback.format_exception(caught.value))
    with endpoint.client(read_timeout=120) as client:
        clip = client.generate("scan in process", num_inference_steps=2, audio_end_in_s=1.0)
        seen["clip"] = repr(clip) + clip.summary() + clip._repr_html_()[:5000]

    # The endpoint's own log, the deployment's printed output, and every log record.
    seen["deployment logs"] = deployment.logs("scan")
    captured = capfd.readouterr()
    seen["printed"] = captured.out + captured.err
    seen["log records"] = "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    )

    found = {where: leaks(text) for where, text in seen.items() if leaks(text)}
    assert not found, found

    # Every file written: clips (their metadata too), manifests, logs and state.
    clips = [out / "clip.wav", out / "clip.flac", *sorted((out / "batch").glob("*.wav"))]
    assert len(clips) == 4 and all(Clip.load(path).request is not None for path in clips)
    holders = []
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        if leaks(path.read_bytes()):
            holders.append(path.relative_to(tmp_path))
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == 0o600, f"{path} holds a secret with mode {oct(mode)}"
    # Only the state files meant to hold them: the saved token and the endpoint record (its key).
    assert sorted(map(str, holders)) == ["state/endpoints/local/scan.json", "state/secrets/HF_TOKEN"], holders
    record = json.loads((tmp_path / "state/endpoints/local/scan.json").read_text())
    assert record["api_key"] == FAKE_KEY


def test_the_bearer_check_is_constant_time(monkeypatch):
    """`_authorized` compares the key with hmac.compare_digest, whatever the header holds."""
    calls = []
    real_compare = hmac.compare_digest

    def spy(given, expected):
        calls.append((given, expected))
        return real_compare(given, expected)

    monkeypatch.setattr(serving_app.hmac, "compare_digest", spy)

    def request(authorization: str | None) -> Request:
        headers = [(b"authorization", authorization.encode("latin-1"))] if authorization else []
        return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})

    key = "the-right-key-0123456789"
    assert serving_app._authorized(request(f"Bearer {key}"), key)
    assert not serving_app._authorized(request(f"Bearer {key[:-1]}X"), key)
    assert not serving_app._authorized(request("Bearer the-right"), key)  # a prefix is not enough
    assert [expected for _, expected in calls] == [key.encode()] * 3
    assert not serving_app._authorized(request(None), key)
    assert not serving_app._authorized(request(f"Basic {key}"), key)
