"""AudioClient against the real offline endpoint (happy paths) and a real fault-injecting server.

The fault server (`tests/fault_server.py`) is a threading http.server on 127.0.0.1 that answers
each generation request with a scripted action and records every request, so each test checks
the error type, its message and the exact number of requests (1 + retries).
"""

from __future__ import annotations

import json
import logging
import secrets
import shlex
import subprocess
from pathlib import Path

import httpx
import pytest
from fault_server import FaultServer, audio, cut, error, not_audio, reply, reset, stall, truncated

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.client import AudioClient, clip_file_name, normalise_url, retry_after
from flexaudio_helpers.errors import (
    AuthenticationError,
    EndpointNotConfigured,
    EndpointNotFound,
    EndpointUnavailable,
    GenerationFailed,
    GenerationTimeout,
    InvalidAudioResponse,
    InvalidParameters,
)
from flexaudio_helpers.params import GenerationRequest

KEY = f"sk-fault-{secrets.token_hex(16)}"
CHEAP = {"audio_end_in_s": 1.0, "num_inference_steps": 2}


@pytest.fixture
def fault():
    with FaultServer() as server:
        yield server


@pytest.fixture
def seen(caplog):
    """Everything the client logs (at every level), to check that the key never shows."""
    caplog.set_level(logging.DEBUG)
    return caplog


def client_for(server, **options) -> AudioClient:
    options = {"url": server.url, "api_key": KEY, "backoff": 0.01, "max_retries": 3, **options}
    return AudioClient(**options)


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)


# ----- the real endpoint ---------------------------------------------------------------------
def test_generate_on_the_offline_endpoint(offline_server):
    # A pasted full route is normalised to the base URL rather than doubled.
    with AudioClient(offline_server.url + "/v1/audios/generations", offline_server.api_key) as client:
        assert client.url == offline_server.url
        clip = client.generate("Rain on a tin roof", seed=11, **CHEAP)
        models = client.models()

    assert isinstance(clip, Clip)
    assert (clip.sample_rate, clip.channels, clip.frames) == (44_100, 2, 44_100)
    assert clip.seed == 11 and clip.offline
    assert clip.request == GenerationRequest.build("Rain on a tin roof", seed=11, **CHEAP)
    assert set(clip.timings) == {"request", "generation", "queue"}
    assert clip.timings["request"] >= clip.timings["generation"] > 0
    assert models["data"][0]["id"] == "offline"


def test_generate_many_on_the_offline_endpoint(offline_server, tmp_path):
    items = [
        "first prompt",
        {"inputs": "second prompt", "parameters": {**CHEAP, "seed": 5}},
        {"inputs": "bad", "parameters": {"seed": -1}},  # fails locally; the others still run
    ]
    with AudioClient(offline_server.url, offline_server.api_key) as client:
        results = client.generate_many(
            [GenerationRequest.build(items[0], **CHEAP), *items[1:]], out_dir=tmp_path, progress=False
        )

    assert [r.index for r in results] == [0, 1, 2]
    assert [r.ok for r in results] == [True, True, False]
    assert [r.clip.prompt for r in results[:2]] == ["first prompt", "second prompt"]
    assert results[1].clip.seed == 5
    assert isinstance(results[2].error, InvalidParameters) and results[2].error.field == "parameters.seed"
    for result in results[:2]:
        saved = Clip.load(result.path)
        assert saved.request == result.request and saved.seed == result.clip.seed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0000-first-prompt.wav",
        "0001-second-prompt.wav",
        "manifest.jsonl",
    ]


# ----- configuration -------------------------------------------------------------------------
def test_url_and_key_from_the_environment_or_a_dotenv_file(fault, tmp_path, monkeypatch):
    monkeypatch.delenv("INFERENCE_URL", raising=False)
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EndpointNotConfigured, match="INFERENCE_URL"):
        AudioClient()

    (tmp_path / ".env").write_text(f"INFERENCE_URL={fault.url}/v1\nINFERENCE_API_KEY={KEY}\n")
    with AudioClient(backoff=0.01) as client:
        assert client.url == fault.url
        client.generate("from the .env file")
    assert fault.generations[-1].headers["Authorization"] == f"Bearer {KEY}"

    monkeypatch.setenv("INFERENCE_API_KEY", "sk-from-the-environment-wins")
    with AudioClient() as client:
        client.generate("environment first")
    assert fault.generations[-1].headers["Authorization"] == "Bearer sk-from-the-environment-wins"


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://example.com", "http://"])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(EndpointNotConfigured, match="http:// or https://"):
        AudioClient(url, KEY)


def test_normalise_url_removes_route_suffixes():
    base = "https://inference-x.platform.flex.ai"
    for given in (base, base + "/", base + "/v1", base + "/v1/audios/generations/v1/audios/generations"):
        assert normalise_url(given)[0] == base
    assert normalise_url(base + "/v1/audios/generations") == (base, ["/v1/audios/generations"])


# ----- faults --------------------------------------------------------------------------------
def test_bad_parameters_are_refused_before_any_request(fault):
    with client_for(fault) as client, pytest.raises(InvalidParameters) as caught:
        client.generate("x", seed=-1)
    assert caught.value.field == "parameters.seed" and "allowed" in str(caught.value)
    assert fault.requests == []


def test_401_is_an_authentication_error_without_the_key(fault, seen):
    fault.play(error(401, "missing or wrong API key"))
    client = client_for(fault)
    with pytest.raises(AuthenticationError, match=r"\(HTTP 401\): missing or wrong API key") as caught:
        client.generate("x")
    assert len(fault.generations) == 1  # never retried
    assert fault.generations[0].headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in fault.generations[0].path
    assert caught.value.status_code == 401
    assert_no_secret(caught.value, repr(caught.value), repr(client), seen.text)


def test_401_without_a_key_says_none_was_sent(fault, monkeypatch, tmp_path):
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    fault.play(error(401, "missing API key"))
    with pytest.raises(AuthenticationError, match="no API key was sent"):
        AudioClient(fault.url, backoff=0.01).generate("x")
    assert "Authorization" not in fault.generations[0].headers


def test_404_explains_the_url(fault):
    client = client_for(fault, url=fault.url + "/v1/audio/generations")  # "audio", not "audios"
    with pytest.raises(EndpointNotFound) as caught:
        client.generate("x")
    message = str(caught.value)
    assert "HTTP 404: Not Found" in message and "looks like part of a route" in message
    assert "jq .config.endpointUrl" in message
    assert [r.path for r in fault.requests] == ["/v1/audio/generations/v1/audios/generations"]


@pytest.mark.parametrize(
    "answer",
    [
        error(
            422, "parameters.guidance_scale=9 is too high for this model", param="parameters.guidance_scale"
        ),
        reply(422, {"detail": [{"loc": ["body", "parameters", "guidance_scale"], "msg": "too high"}]}),
    ],
    ids=["our-shape", "fastapi-shape"],
)
def test_422_names_the_field(fault, answer):
    fault.play(answer)
    with pytest.raises(InvalidParameters, match="HTTP 422") as caught:
        client_for(fault).generate("x", guidance_scale=9.0)
    assert caught.value.field == "parameters.guidance_scale"
    assert caught.value.value == 9.0
    assert "too high" in str(caught.value) and "0 to 50" in caught.value.allowed
    assert len(fault.generations) == 1


def test_429_honours_retry_after_then_succeeds(fault):
    fault.play(error(429, "slow down", **{"Retry-After": "1"}))
    clip = client_for(fault).generate("x")
    assert clip.seed == 7
    first, second = fault.generations
    assert second.at - first.at >= 0.95  # the client waited what Retry-After asked


def test_503_then_success_is_retried(fault):
    fault.play(error(503, "busy"), error(502, "bad gateway"), error(504, "gateway timeout"))
    clip = client_for(fault).generate("x")
    assert clip.frames > 0 and clip.timings["generation"] == pytest.approx(0.01)
    assert len(fault.generations) == 4


def test_busy_until_the_retries_run_out(fault):
    fault.play(then=error(503, "the queue is full"))
    with pytest.raises(EndpointUnavailable, match="after 3 attempts; last: HTTP 503: the queue is full"):
        client_for(fault, max_retries=2).generate("x")
    assert len(fault.generations) == 3
    # The same request every time.
    assert len({r.body for r in fault.generations}) == 1


def test_a_server_error_is_not_retried(fault):
    fault.play(error(500, "generation failed: RuntimeError: CUDA out of memory"))
    with pytest.raises(GenerationFailed, match=r"HTTP 500\): generation failed: .*CUDA out of memory"):
        client_for(fault).generate("x")
    assert len(fault.generations) == 1


def test_connection_reset_is_retried(fault):
    fault.play(reset())
    assert client_for(fault).generate("x").seed == 7
    assert len(fault.generations) == 2


@pytest.mark.parametrize("action", [reset, cut], ids=["reset", "cut-mid-body"])
def test_dropped_connections_until_the_retries_run_out(fault, action):
    fault.play(then=action())
    with pytest.raises(EndpointUnavailable, match="after 4 attempts") as caught:
        client_for(fault).generate("x")
    assert len(fault.generations) == 4
    assert_no_secret(caught.value)


def test_nothing_listening(tmp_path):
    with FaultServer() as server:
        url = server.url  # a port that was just free again
    with pytest.raises(
        EndpointUnavailable, match=r"after 2 attempts; last: ConnectError.*is the endpoint running"
    ):
        AudioClient(url, KEY, max_retries=1, backoff=0.01).generate("x")


def test_truncated_audio_is_an_invalid_response(fault):
    fault.play(truncated())
    with pytest.raises(InvalidAudioResponse, match="truncated"):
        client_for(fault).generate("x")
    assert len(fault.generations) == 1


def test_a_body_that_is_not_audio_is_an_invalid_response(fault):
    fault.play(not_audio())
    with pytest.raises(InvalidAudioResponse, match="HTML instead of audio"):
        client_for(fault).generate("x")
    assert len(fault.generations) == 1


def test_a_stall_past_the_read_timeout_is_not_retried(fault):
    fault.play(stall(30))
    with pytest.raises(GenerationTimeout, match=r"read timeout of 0\.5 s") as caught:
        client_for(fault, read_timeout=0.5).generate("x")
    assert isinstance(caught.value, TimeoutError)
    assert len(fault.generations) == 1


def test_retry_after_as_an_http_date():
    response = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after(response) == 0.0  # in the past: retry at once
    assert retry_after(httpx.Response(429, headers={"Retry-After": "86400"})) == 120.0  # capped
    assert retry_after(httpx.Response(503)) is None


# ----- batches -------------------------------------------------------------------------------
def test_a_batch_keeps_going_leaves_no_partial_file_and_reruns_only_what_is_missing(fault, tmp_path):
    prompts = ["one", "two", "three", ""]
    fault.play(audio(seed=1), error(500, "boom"), audio(seed=3))
    with client_for(fault) as client:
        results = client.generate_many(prompts, concurrency=1, out_dir=tmp_path, progress=False)

    assert [r.ok for r in results] == [True, False, True, False]
    assert isinstance(results[1].error, GenerationFailed) and results[1].path is None
    assert isinstance(results[3].error, InvalidParameters)
    assert len(fault.generations) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0000-one.wav", "0002-three.wav", "manifest.jsonl"]
    lines = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["ok", "failed", "ok", "failed"]
    assert [line["request"]["inputs"] for line in lines] == prompts
    assert lines[0]["path"] == "0000-one.wav" and lines[0]["seed"] == 1
    assert "(HTTP 500): boom" in lines[1]["error"] and lines[1]["path"] is None

    # Again: the two saved clips are reused, only "two" is generated.
    with client_for(fault) as client:
        again = client.generate_many(prompts[:3], concurrency=2, out_dir=tmp_path, progress=False)
    assert [r.ok for r in again] == [True, True, True]
    assert [r.reused for r in again] == [True, False, True]
    assert json.loads(fault.generations[-1].body)["inputs"] == "two"
    assert len(fault.generations) == 4
    assert (tmp_path / clip_file_name(1, again[1].request)).is_file()


def test_a_changed_request_is_not_reused(fault, tmp_path):
    with client_for(fault) as client:
        client.generate_many([GenerationRequest.build("rain", seed=1)], out_dir=tmp_path, progress=False)
        client.generate_many([GenerationRequest.build("rain", seed=2)], out_dir=tmp_path, progress=False)
    assert [json.loads(r.body)["parameters"]["seed"] for r in fault.generations] == [1, 2]


# ----- secrets and curl ----------------------------------------------------------------------
def test_repr_and_curl_command_hide_the_key(fault, tmp_path):
    client = client_for(fault)
    assert KEY not in repr(client) and "<hidden>" in repr(client)
    command = client.curl_command("it's raining", output=str(tmp_path / "rain.wav"), seed=3)
    assert KEY not in command and '"Authorization: Bearer $INFERENCE_API_KEY"' in command

    # The command is real: run it, and the fault server sees the same request the client sends.
    subprocess.run(
        ["bash", "-c", command], check=True, env={"INFERENCE_API_KEY": KEY, "PATH": "/usr/bin:/bin"}
    )
    client.generate("it's raining", seed=3)
    by_curl, by_client = fault.generations
    assert by_curl.json() == by_client.json() == {"inputs": "it's raining", "parameters": {"seed": 3}}
    assert by_curl.headers["Authorization"] == by_client.headers["Authorization"] == f"Bearer {KEY}"
    assert Path(tmp_path / "rain.wav").read_bytes()[:4] == b"RIFF"
    assert shlex.split(command)[0] == "curl"
