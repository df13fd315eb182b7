"""The shared primitives on their own: redaction, manifest lines, settings, files and the one
status -> typed error map (also as deploy's readiness check meets it, through the client). No
socket, no server: HTTP goes through ``httpx.MockTransport``."""

from __future__ import annotations

import json
import os
import stat

import httpx
import pytest
from fault_server import wav_bytes

from flexaudio_helpers.batch import MANIFEST_NAME, ManifestLine, write_manifest
from flexaudio_helpers.deploy import store
from flexaudio_helpers.deploy.endpoint_info import Endpoint
from flexaudio_helpers.deploy.readiness import confirm_endpoint
from flexaudio_helpers.errors import (
    AuthenticationError,
    EndpointNotFound,
    FlexAudioError,
    GenerationFailed,
    HTTPError,
    InvalidAudioResponse,
    InvalidParameters,
)
from flexaudio_helpers.files import PRIVATE, TEMPORARY_SUFFIX, atomic_writer, write_atomic
from flexaudio_helpers.protocol import sniff_format
from flexaudio_helpers.redact import MASK, display_url, mask_text, mask_values
from flexaudio_helpers.responses import error_for_response
from flexaudio_helpers.settings import resolve

KEY = "sk-shared-0123456789"


# ----- redaction -----------------------------------------------------------------------------
def test_an_echoed_key_of_any_length_is_masked():
    assert mask_values(f"the key {KEY} was wrong", [KEY, None]) == f"the key {MASK} was wrong"
    assert mask_values("key sk-1234 refused", ["sk-1234"]) == f"key {MASK} refused"  # 7 characters
    # A secret inside another is masked whole, never left half shown.
    assert mask_values("sk-1234-long", ["sk-1234", "sk-1234-long"]) == MASK
    # Deploy's masking also hides any "API Key: ..." value and short secrets it was given.
    assert mask_text("API Key: abc123\nnote: abc", ["abc"]) == f"API Key: {MASK}\nnote: {MASK}"


def test_display_url_hides_credentials_and_query_values():
    shown = display_url("https://user:secret@host.example/v1?token=abc")
    assert shown == f"https://{MASK}@host.example/v1?{MASK}"
    assert display_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


# ----- audio magic bytes ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "WAV"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),  # a RIFF file that is not audio
        (b"fLaC\x00\x00", "FLAC"),
        (b"OggS\x00\x02", "OGG"),
        (b"ID3\x04\x00", "MP3"),
        (b"\xff\xfb\x90\x00", "MP3"),
        (b"<html>", None),
        (b"", None),
    ],
)
def test_one_sniff_for_every_audio_format(data, fmt):
    assert sniff_format(data) == fmt


# ----- manifest lines ------------------------------------------------------------------------
def test_manifest_lines_for_a_batch_and_for_the_explorer(tmp_path):
    body = {"inputs": "rain", "parameters": {"seed": 3}}
    pending = ManifestLine(0, "pending", body)
    done = ManifestLine(1, "ok", body, seed=3, path="0001-rain.wav", timings={"request": 1.5})
    failed = ManifestLine(2, "failed", "not a request", error="InvalidParameters: body")
    # The explorer's export: every take "ok", its timings even when empty, then origin and offline.
    take = ManifestLine(
        3, "ok", body, seed=3, path="rain.flac", timings={}, extra={"origin": "sweep", "offline": True}
    )
    assert pending.to_dict() == {"index": 0, "status": "pending", "request": body}
    assert list(done.to_dict()) == ["index", "status", "request", "seed", "path", "error", "timings"]
    assert "timings" not in failed.to_dict() and failed.to_dict()["error"] == "InvalidParameters: body"
    assert list(take.to_dict()) == [
        *("index", "status", "request", "seed", "path", "error", "timings", "origin", "offline")
    ]
    path = write_manifest(tmp_path, [pending, done, failed, take])
    assert path == tmp_path / MANIFEST_NAME
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [line.to_dict() for line in (pending, done, failed, take)]
    with pytest.raises(ValueError, match="status must be one of"):
        ManifestLine(0, "done", body)


# ----- files ---------------------------------------------------------------------------------
def test_atomic_writes_are_whole_or_absent_with_the_mode_asked(tmp_path):
    target = tmp_path / "data.txt"
    write_atomic(target, "old")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    with pytest.raises(RuntimeError), atomic_writer(target) as stream:
        stream.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"  # the old file is untouched, and no temporary is left
    assert not [name for name in os.listdir(tmp_path) if name.endswith(TEMPORARY_SUFFIX)]
    secret = write_atomic(tmp_path / "key", "s3cret", mode=PRIVATE)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_an_atomic_write_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out.txt").symlink_to(victim)
    write_atomic(tmp_path / "out.txt", "ours")
    assert victim.read_text() == "precious" and (tmp_path / "out.txt").read_text() == "ours"


# ----- settings: the environment, then .env --------------------------------------------------
def test_settings_come_from_the_environment_then_the_dotenv_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INFERENCE_URL", raising=False)
    monkeypatch.setenv("INFERENCE_API_KEY", "  ")  # blank counts as unset
    assert resolve("INFERENCE_URL", "INFERENCE_API_KEY") == {"INFERENCE_URL": None, "INFERENCE_API_KEY": None}
    (tmp_path / ".env").write_text(f"INFERENCE_URL=http://from-dotenv.example\nINFERENCE_API_KEY={KEY}\n")
    assert resolve("INFERENCE_URL")["INFERENCE_URL"] == "http://from-dotenv.example"
    monkeypatch.setenv("INFERENCE_URL", "http://from-env.example")
    assert resolve("INFERENCE_URL", "INFERENCE_API_KEY") == {
        "INFERENCE_URL": "http://from-env.example",
        "INFERENCE_API_KEY": KEY,
    }


def test_deploy_finds_the_endpoint_in_dotenv_as_the_client_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INFERENCE_URL", raising=False)
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    assert store.endpoint_from_env("demo") is None
    (tmp_path / ".env").write_text(f"INFERENCE_URL=http://from-dotenv.example\nINFERENCE_API_KEY={KEY}\n")
    endpoint = store.endpoint_from_env("demo")
    assert (endpoint.url, endpoint.api_key, endpoint.target) == ("http://from-dotenv.example", KEY, "env")


# ----- status -> typed error -----------------------------------------------------------------
def _answer(status: int, **fields) -> httpx.Response:
    request = httpx.Request("POST", "https://host.example/v1/audios/generations")
    return httpx.Response(status, request=request, **fields)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidParameters),
        (422, InvalidParameters),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, EndpointNotFound),
        (405, EndpointNotFound),
        (301, GenerationFailed),
        (500, GenerationFailed),
    ],
)
def test_each_status_maps_to_one_typed_error_with_real_fields(status, kind):
    error = error_for_response(_answer(status, json={"error": {"message": "no", "param": None}}))
    assert type(error) is kind and isinstance(error, HTTPError)
    assert (error.status_code, error.server_message) == (status, "no")
    assert f"HTTP {status}" in str(error)


def test_the_map_masks_what_the_server_echoed_and_adds_the_callers_advice():
    response = _answer(401, json={"error": {"message": f"key {KEY} refused"}})
    error = error_for_response(
        response, scrub=lambda text: mask_values(text, [KEY]), auth_advice="serve it again"
    )
    assert KEY not in str(error) and str(error).endswith("; serve it again")
    assert error.server_message == f"key {MASK} refused"


def test_http_errors_declare_their_fields_on_the_class():
    assert {"status_code", "server_message"} <= set(HTTPError.__annotations__)
    assert HTTPError("x").status_code is None and InvalidParameters("x").server_message is None


# ----- the same map in deploy's readiness check ----------------------------------------------
def _confirm(*answers: httpx.Response) -> tuple[float | Exception, int]:
    """Run `confirm_endpoint` against scripted answers; return its result (or error) and requests."""
    script = list(answers)
    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return script.pop(0)

    endpoint = Endpoint(name="demo", url="https://demo.example", api_key=KEY)
    try:
        result = confirm_endpoint(
            endpoint, timeout=30, interval=0, show=lambda _: None, transport=httpx.MockTransport(answer)
        )
    except FlexAudioError as exc:
        result = exc
    return result, len(sent)


def test_readiness_retries_a_loading_endpoint_then_accepts_only_whole_audio():
    loading = (httpx.Response(503), httpx.Response(429), httpx.Response(500))
    result, sent = _confirm(*loading, httpx.Response(200, content=wav_bytes()))
    assert isinstance(result, float) and sent == 4
    # A WAV header alone is not audio: the probe decodes the answer as the client does.
    truncated, _ = _confirm(httpx.Response(200, content=b"RIFF\x24\x00\x00\x00WAVEfmt "))
    assert isinstance(truncated, InvalidAudioResponse)


def test_readiness_raises_the_clients_typed_errors_without_the_key():
    refused, sent = _confirm(httpx.Response(401, json={"error": {"message": f"bad key {KEY}"}}))
    assert isinstance(refused, AuthenticationError) and refused.status_code == 401 and sent == 1
    assert KEY not in str(refused) and "'demo'" in str(refused)
    missing, _ = _confirm(httpx.Response(404, text="Not Found"))
    assert isinstance(missing, EndpointNotFound) and missing.status_code == 404
    rejected, _ = _confirm(httpx.Response(422, json={"detail": "no"}))
    assert isinstance(rejected, InvalidParameters) and rejected.status_code == 422
    # A RIFF file that is not WAVE is no audio (the check it used to lack).
    not_audio, _ = _confirm(httpx.Response(200, content=b"RIFF\x24\x00\x00\x00AVI LIST"))
    assert isinstance(not_audio, InvalidAudioResponse)
