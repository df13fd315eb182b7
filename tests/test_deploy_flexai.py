"""The FlexAI deployment against a scripted stand-in ``flexai`` executable.

The real ``flexai`` CLI cannot be installed here (it comes from FlexAI's own installer) and
FlexAI's cloud cannot be reached, so each test puts `flexai_stand_in.py` first on PATH as
``flexai``. It reproduces the documented formats: the secret value read from stdin, the API key
printed once on an ``API Key: <key>`` line among other output, ``inspect -j`` JSON moving from
``enqueued`` to ``running`` (URL null, then set), a failure, a CLI without ``delete``, a logged-out
CLI. The endpoint URL it reports points at a real local endpoint (offline model), so the readiness
check makes a real generation.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from flexaudio_helpers.deploy import (
    FlexAIDeployment,
    LocalDeployment,
    connect,
    endpoint,
    remember_endpoint,
    store,
)
from flexaudio_helpers.deploy.flexai_cli import INSTALL_COMMAND
from flexaudio_helpers.deploy.flexai_output import subcommands, table_lookup
from flexaudio_helpers.errors import (
    ApiKeyNotFound,
    CLINotFound,
    CommandFailed,
    EndpointFailed,
    InvalidParameters,
    NotLoggedIn,
    UnsupportedCommand,
)
from flexaudio_helpers.redact import find_api_key

STAND_IN = Path(__file__).with_name("flexai_stand_in.py")
HF_TOKEN = "hf_StandInTokenValue1234567890"
SERVE_COMMAND = (
    "flexai inference serve stable-audio-open --runtime flexserve --hf-token-secret MY_HF_TOKEN "
    "-- --task text-to-audio --model stabilityai/stable-audio-open-1.0"
)


class StandIn:
    """The stand-in CLI's folder: its scenario, and what it was called with."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def scenario(self, **settings) -> None:
        (self.home / "scenario.json").write_text(json.dumps(settings))

    def calls(self) -> list[dict]:
        path = self.home / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def state(self) -> dict:
        return json.loads((self.home / "state.json").read_text())


@pytest.fixture
def flexai(tmp_path, monkeypatch) -> StandIn:
    """The stand-in installed as `flexai`, first on PATH, with a fresh state folder."""
    return install_stand_in(tmp_path, monkeypatch)


def install_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    """Put the stand-in first on PATH as `flexai`, with its own HOME and state folders."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable = bin_dir / "flexai"
    executable.write_text(f"#!{sys.executable}\n" + STAND_IN.read_text())
    executable.chmod(0o755)
    home = tmp_path / "stand-in"
    home.mkdir()
    monkeypatch.setenv("FAKE_FLEXAI_HOME", str(home))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLEXAUDIO_STATE_DIR", str(tmp_path / "state"))
    for name in ("FLEXAUDIO_TARGET", "INFERENCE_URL", "INFERENCE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    stand_in = StandIn(home)
    stand_in.scenario()
    return stand_in


def fast(deployment: FlexAIDeployment) -> FlexAIDeployment:
    """Short bounds for tests (the defaults are minutes); each test still asserts they end."""
    deployment.poll_interval = 0.05
    deployment.confirm_timeout = 60
    deployment.inspect_grace = 3.0
    deployment.gone_timeout = 3.0
    deployment.serve_exit_grace = 1.0
    return deployment


def assert_private(path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def assert_not_shown(secret: str, capfd, *texts: str) -> None:
    captured = capfd.readouterr()
    for text in (captured.out, captured.err, *texts):
        assert secret not in text


def test_secret_goes_on_stdin_without_trailing_newline(flexai, capfd):
    deployment = connect()
    assert isinstance(deployment, FlexAIDeployment)
    assert "logged in" in deployment.reason

    assert not deployment.secret_exists("MY_HF_TOKEN")
    deployment.create_secret("MY_HF_TOKEN", HF_TOKEN + "\n")  # a pasted token often ends in a newline

    creates = [call for call in flexai.calls() if call["argv"][:2] == ["secret", "create"]]
    assert [call["argv"] for call in creates] == [["secret", "create", "MY_HF_TOKEN"]]
    assert creates[0]["stdin"] == HF_TOKEN  # exactly the value: no trailing newline
    assert all(HF_TOKEN not in " ".join(call["argv"]) for call in flexai.calls())
    assert deployment.secret_exists("MY_HF_TOKEN")
    assert not deployment.secret_exists("MY_HF")  # a whole cell, not a prefix

    deployment.create_secret("MY_HF_TOKEN", "another-value")  # exists: kept, not created twice
    assert len([call for call in flexai.calls() if call["argv"][:2] == ["secret", "create"]]) == 1
    assert "flexai secret create MY_HF_TOKEN  # value sent on stdin" in deployment.commands
    assert "$ flexai secret create MY_HF_TOKEN" in capfd.readouterr().out
    assert_not_shown(HF_TOKEN, capfd, *deployment.commands)


def test_serve_captures_key_then_waits_until_a_real_request_works(flexai, offline_server, capfd):
    flexai.scenario(
        api_key=offline_server.api_key,
        statuses=[
            ["enqueued", None],
            ["building", ""],
            ["running", None],
            ["running", offline_server.url + "/"],
        ],
    )
    deployment = fast(connect("flexai"))
    deployment.create_secret("MY_HF_TOKEN", HF_TOKEN)

    served = deployment.serve("stable-audio-open", hf_token_secret="MY_HF_TOKEN")
    assert served.url is None and served.api_key == offline_server.api_key
    assert deployment.endpoint("stable-audio-open").url is None  # inspect: enqueued, no URL yet
    record_file = store.record_path("flexai", "stable-audio-open")
    assert_private(record_file)
    assert json.loads(record_file.read_text())["api_key"] == offline_server.api_key
    assert SERVE_COMMAND in deployment.commands

    info = deployment.inspect("stable-audio-open")
    assert (info.status, info.url, info.ready) == ("building", None, False)

    ready = deployment.wait_until_ready("stable-audio-open", timeout=60)
    assert ready.url == offline_server.url
    assert ready.api_key == offline_server.api_key
    assert deployment.inspect("stable-audio-open").ready

    later = endpoint("stable-audio-open")  # what a notebook in another kernel does
    assert (later.url, later.api_key, later.target) == (offline_server.url, offline_server.api_key, "flexai")

    deployment.serve("stable-audio-open", hf_token_secret="MY_HF_TOKEN")  # exists: reused, not served again
    assert len([call for call in flexai.calls() if call["argv"][:2] == ["inference", "serve"]]) == 1

    deployment.delete("stable-audio-open")
    assert not record_file.exists()
    assert "stable-audio-open" not in flexai.state()["endpoints"]
    assert_not_shown(offline_server.api_key, capfd, repr(ready), str(ready), *deployment.commands)


def test_key_without_label_is_found_as_the_lone_uuid(flexai, capfd):
    key = "0b7c6f9e-2d4a-4e8b-9c1d-3f5a7b9d1e2f"
    flexai.scenario(
        api_key=key,
        serve_output=(
            "Creating endpoint...\nURL: https://inference-11111111-2222-3333-4444-555555555555-1a2b3c4d"
            ".platform.flex.ai\nYour key (shown once):\n  {key}\n"
        ),
    )
    deployment = connect("flexai")
    assert deployment.serve("sa", model="stabilityai/stable-audio-open-1.0").api_key == key
    assert_not_shown(key, capfd)


def test_key_not_found_says_where_to_paste_it(flexai, capfd):
    flexai.scenario(serve_output="Endpoint created.\nKey: (see the console)\n")
    deployment = connect("flexai")
    with pytest.raises(ApiKeyNotFound, match="remember_endpoint") as caught:
        deployment.serve("sa")
    saved = store.state_dir() / "flexai-serve-sa.out"
    assert str(saved) in str(caught.value)
    assert_private(saved)

    remember_endpoint("sa", api_key="pasted-key-123456")
    assert endpoint("sa").api_key == "pasted-key-123456"


def test_existing_endpoint_without_saved_key_is_a_clear_error(flexai):
    deployment = connect("flexai")
    deployment.serve("sa")
    store.remove_record("flexai", "sa")
    with pytest.raises(ApiKeyNotFound, match="already exists on FlexAI"):
        deployment.serve("sa")


def test_failed_endpoint_raises_with_its_last_logs(flexai, capfd):
    flexai.scenario(
        statuses=[["enqueued", None], ["failed", None]],
        logs=["loading stabilityai/stable-audio-open-1.0", "torch.OutOfMemoryError: CUDA out of memory"],
    )
    deployment = fast(connect("flexai"))
    served = deployment.serve("sa")
    with pytest.raises(EndpointFailed, match="CUDA out of memory") as caught:
        deployment.wait_until_ready("sa", timeout=60)
    assert caught.value.status == "failed"
    assert "flexai inference logs sa" in deployment.commands
    assert_not_shown(served.api_key, capfd, str(caught.value))


def test_missing_delete_subcommand_is_named(flexai):
    flexai.scenario(verbs=["inspect", "list", "logs", "serve", "stop"])
    deployment = connect("flexai")
    deployment.serve("sa")
    deployment.stop("sa")
    with pytest.raises(
        UnsupportedCommand, match=r"no `flexai inference delete`.*offers: inspect, list, logs"
    ):
        deployment.delete("sa")
    assert store.load_record("flexai", "sa")  # nothing forgotten when nothing was deleted


def test_not_logged_in(flexai, capfd):
    flexai.scenario(logged_in=False)
    with pytest.raises(NotLoggedIn, match="flexai auth login"):
        connect("flexai")
    chosen = connect()
    assert isinstance(chosen, LocalDeployment)
    assert "not logged in" in chosen.reason
    # A command that fails for want of a login says so too.
    with pytest.raises(NotLoggedIn, match="flexai auth login"):
        FlexAIDeployment().create_secret("MY_HF_TOKEN", HF_TOKEN)
    assert_not_shown(HF_TOKEN, capfd)


def test_missing_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing called flexai here
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FLEXAUDIO_TARGET", raising=False)
    with pytest.raises(CLINotFound) as caught:
        connect("flexai")
    assert INSTALL_COMMAND in str(caught.value)
    chosen = connect()
    assert isinstance(chosen, LocalDeployment)
    assert "not installed" in chosen.reason


def test_target_variable_wins(flexai, monkeypatch):
    monkeypatch.setenv("FLEXAUDIO_TARGET", "local")
    assert isinstance(connect("flexai"), LocalDeployment)
    monkeypatch.setenv("FLEXAUDIO_TARGET", "offline")
    assert connect().model == "offline"
    monkeypatch.setenv("FLEXAUDIO_TARGET", "cloud")
    with pytest.raises(InvalidParameters, match="FLEXAUDIO_TARGET"):
        connect()


def test_cli_errors_surface_its_stderr(flexai):
    deployment = connect("flexai")
    with pytest.raises(CommandFailed, match="inference endpoint 'nope' not found") as caught:
        deployment.inspect("nope")
    assert caught.value.returncode == 1


def test_inspect_tolerates_notices_and_unknown_schemas(flexai):
    deployment = connect("flexai")
    deployment.serve("sa")
    flexai.scenario(inspect_output='Notice: a new version is out\n{"spec": {"x": 1}, "runtime": null}')
    info = deployment.inspect("sa")
    assert (info.status, info.url) == ("unknown", None)
    assert info.raw == {"spec": {"x": 1}, "runtime": None}
    flexai.scenario(inspect_output="no json at all")
    with pytest.raises(CommandFailed, match="did not print JSON"):
        deployment.inspect("sa")


def test_environment_overrides_everything(flexai, monkeypatch):
    monkeypatch.setenv("INFERENCE_URL", "https://inference-abc.platform.flex.ai")
    monkeypatch.setenv("INFERENCE_API_KEY", "env-key-123456")
    deployment = connect("flexai")
    served = deployment.serve("sa")
    assert (served.url, served.api_key) == ("https://inference-abc.platform.flex.ai", "env-key-123456")
    assert not [call for call in flexai.calls() if call["argv"][:2] == ["inference", "serve"]]
    assert endpoint("anything").api_key == "env-key-123456"
    assert "env-key-123456" not in repr(served)


def test_parsers_tolerate_the_documented_shapes():
    uuid_key = "0b7c6f9e-2d4a-4e8b-9c1d-3f5a7b9d1e2f"
    token_key = "k_9fQ2xLmZ7Rt4Vb8N"  # opaque, 18 characters
    assert find_api_key(f"│ API Key: {token_key} │\n") == token_key
    assert find_api_key(f"api_key = '{token_key}'") == token_key
    assert find_api_key(f"\x1b[32mAPI Key:\x1b[0m  {uuid_key}\n") == uuid_key
    assert find_api_key(f"┃ Access Key ┃ {token_key} ┃") == token_key
    assert find_api_key(f"Key: {uuid_key}") == uuid_key
    assert find_api_key("nothing here") is None
    # Only key-shaped values: never an English word (or a short value) after the colon.
    assert find_api_key("API Key: Unavailable") is None
    assert find_api_key("API Key: shown-in-the-console") is None
    assert find_api_key("API Key: abcd-1234") is None
    assert find_api_key("Save this key: it will not be shown again.") is None
    assert find_api_key(f"API Key: Unavailable\nYour key:\n   {token_key}\n") == token_key
    assert subcommands(" inspect  x\n") == {"inspect"}
    urfave_help = "COMMANDS:\n   serve, s   Serve\n   delete   Delete\n\nOPTIONS:\n"
    assert subcommands(urfave_help) == {"serve", "delete"}
    assert table_lookup("NAME │ CREATED\nMY_HF_TOKEN │ now", "MY_HF_TOKEN") == "yes"
    assert table_lookup("NAME │ CREATED\nMY_HF_TOKEN_2 │ now", "MY_HF_TOKEN") == "no"
