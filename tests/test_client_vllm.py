"""AudioClient speaking vLLM-Omni's Stable Audio API as well as FlexServe's.

vLLM-Omni is the stand-in built from its source (`tests/vllm_omni_stand_in.py`, uvicorn in a thread
on 127.0.0.1, one for the session, recording every request); FlexServe is our real offline endpoint
(`offline_server`). Each test checks what reached the server, so "refused before sending" is counted
there, not assumed.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess

import httpx
import numpy as np
import pytest
from vllm_omni_stand_in import SAMPLE_RATE, StandIn

from flexaudio_helpers import apis
from flexaudio_helpers.audio import Clip
from flexaudio_helpers.cli import main
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.errors import (
    AuthenticationError,
    EndpointNotConfigured,
    EndpointNotFound,
    InvalidParameters,
    InvalidResponse,
)
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.protocol import INFERENCE_API_ENV, INFERENCE_API_KEY_ENV
from flexaudio_helpers.responses import error_for_response

KEY = f"sk-vllm-{secrets.token_hex(16)}"
CHEAP = {"audio_end_in_s": 1.0, "num_inference_steps": 2}


@pytest.fixture(scope="session")
def vllm_omni():
    with StandIn(api_key=KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def no_api_from_outside(monkeypatch, tmp_path):
    """Neither the environment nor a .env file above the working directory chooses the API here."""
    monkeypatch.delenv(INFERENCE_API_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def omni_client(server, **options) -> AudioClient:
    return AudioClient(server.url, KEY, api="vllm-omni", backoff=0.01, max_retries=1, **options)


def last_body(server) -> dict:
    method, path, body = server.requests[-1]
    assert (method, path) == ("POST", "/v1/audio/generate")
    return json.loads(body)


# ----- generating ----------------------------------------------------------------------------
def test_the_same_generate_works_against_both_apis(vllm_omni, offline_server):
    parameters = {
        "audio_end_in_s": 2.0,
        "audio_start_in_s": 0.5,
        "num_inference_steps": 2,
        "guidance_scale": 7.0,
        "negative_prompt": "hiss",
        "seed": 7,
    }
    with omni_client(vllm_omni) as client:
        clip = client.generate("Rain on a tin roof", **parameters)
    # audio_end_in_s became audio_start + audio_length; the rest kept their names.
    assert last_body(vllm_omni) == {
        "input": "Rain on a tin roof",
        "audio_length": 1.5,
        "audio_start": 0.5,
        "negative_prompt": "hiss",
        "guidance_scale": 7.0,
        "num_inference_steps": 2,
        "seed": 7,
        "response_format": "wav",
    }
    assert (clip.sample_rate, clip.channels) == (SAMPLE_RATE, 2)
    assert clip.frames == int(2.0 * SAMPLE_RATE) - int(0.5 * SAMPLE_RATE)
    assert clip.seed == 7 and clip.request == GenerationRequest.build("Rain on a tin roof", **parameters)

    with AudioClient(offline_server.url, offline_server.api_key, api="flexserve") as client:
        clip = client.generate("Rain on a tin roof", seed=7, **CHEAP)
    assert (clip.sample_rate, clip.channels, clip.frames, clip.seed) == (44_100, 2, 44_100, 7)


@pytest.mark.parametrize("response_format", ["flac", "mp3"])
def test_compressed_answers_decode_to_the_same_clip(vllm_omni, response_format):
    with omni_client(vllm_omni) as client:
        wav = client.generate("a tone", seed=3, **CHEAP)
    with AudioClient(vllm_omni.url, KEY, api=apis.VllmOmni(response_format=response_format)) as client:
        clip = client.generate("a tone", seed=3, **CHEAP)
    assert last_body(vllm_omni)["response_format"] == response_format
    assert (clip.sample_rate, clip.channels, clip.frames) == (wav.sample_rate, wav.channels, wav.frames)
    if response_format == "flac":  # lossless: the same samples, within one 16-bit step of rounding
        np.testing.assert_allclose(clip.samples, wav.samples, rtol=0, atol=1.01 / 2**15)
    else:  # lossy: the same tone, within the codec's error
        assert np.corrcoef(clip.samples[0], wav.samples[0])[0, 1] > 0.99


def test_a_format_the_client_cannot_decode_is_refused():
    with pytest.raises(ValueError, match="wav, flac, mp3"):
        apis.VllmOmni(response_format="opus")


def test_generate_many_works_through_vllm_omni(vllm_omni, tmp_path):
    requests = [GenerationRequest.build(f"tone {n}", seed=n, **CHEAP) for n in range(3)]
    before = vllm_omni.count()
    with omni_client(vllm_omni) as client:
        results = client.generate_many(requests, progress=False, out_dir=tmp_path / "clips")
        again = client.generate_many(requests, progress=False, out_dir=tmp_path / "clips")
    assert [result.ok for result in results] == [True, True, True]
    assert [result.clip.seed for result in results] == [0, 1, 2]
    assert all(Clip.load(result.path).frames == SAMPLE_RATE for result in results)
    assert [result.reused for result in again] == [True, True, True]
    assert vllm_omni.count() - before == 3  # the second run sent nothing


# ----- choosing the API ----------------------------------------------------------------------
def test_the_api_comes_from_the_argument_then_the_environment_then_flexserve(vllm_omni, monkeypatch):
    assert AudioClient(vllm_omni.url, KEY).api == apis.FlexServe()
    monkeypatch.setenv(INFERENCE_API_ENV, "vllm-omni")
    assert AudioClient(vllm_omni.url, KEY).api == apis.VllmOmni()
    assert AudioClient(vllm_omni.url, KEY, api="flexserve").api == apis.FlexServe()
    monkeypatch.setenv(INFERENCE_API_ENV, "openai")
    choices = f"{INFERENCE_API_ENV}='openai'.*flexserve, vllm-omni, auto"
    with pytest.raises(EndpointNotConfigured, match=choices):
        AudioClient(vllm_omni.url, KEY)


def test_auto_reads_v1_models_and_accepts_only_one_api(vllm_omni, offline_server):
    before = vllm_omni.count("GET")
    with AudioClient(vllm_omni.url, KEY, api="auto") as client:
        clip = client.generate("a tone", seed=1, **CHEAP)
        assert client.api == apis.VllmOmni()
    assert clip.frames == SAMPLE_RATE
    assert vllm_omni.count("GET") - before == 1  # detected once, then remembered
    with AudioClient(offline_server.url, offline_server.api_key, api="auto") as client:
        assert client.api == apis.FlexServe()

    # A /v1/models that shows neither API (or none at all) is not guessed at.
    cards = {"object": "list", "data": [{"id": "stable-audio", "object": "model"}]}
    for answer in (httpx.Response(200, json=cards), httpx.Response(404, json={"detail": "Not Found"})):
        transport = httpx.MockTransport(lambda request, answer=answer: answer)
        client = AudioClient("http://endpoint.test", KEY, api="auto", transport=transport)
        with pytest.raises(EndpointNotConfigured) as caught:
            client.generate("a tone", **CHEAP)
        assert "api='flexserve'" in str(caught.value) and "api='vllm-omni'" in str(caught.value)


def test_the_wrong_api_says_which_was_tried_and_how_to_choose_the_other(vllm_omni, offline_server):
    before = vllm_omni.count()
    with (
        AudioClient(vllm_omni.url, KEY, api="flexserve", max_retries=1) as client,
        pytest.raises(EndpointNotFound) as caught,
    ):
        client.generate("a tone", **CHEAP)
    message = str(caught.value)
    assert caught.value.status_code == 404
    assert "FlexServe's API (POST /v1/audios/generations)" in message
    for choice in ("AudioClient(url, api='vllm-omni')", f"{INFERENCE_API_ENV}=vllm-omni", "--api vllm-omni"):
        assert choice in message
    assert vllm_omni.count() - before == 1  # a 404 is not retried

    with (
        AudioClient(offline_server.url, offline_server.api_key, api="vllm-omni") as client,
        pytest.raises(EndpointNotFound) as caught,
    ):
        client.generate("a tone", **CHEAP)
    message = str(caught.value)
    assert "vLLM-Omni's API (POST /v1/audio/generate)" in message
    assert "api='flexserve'" in message and f"{INFERENCE_API_ENV}=flexserve" in message


def test_an_unknown_route_is_endpoint_not_found(vllm_omni):
    with (
        AudioClient(vllm_omni.url + "/proxy", KEY, api="vllm-omni") as client,
        pytest.raises(EndpointNotFound) as caught,
    ):
        client.generate("a tone", **CHEAP)
    assert caught.value.server_message == "Not Found"
    assert "/proxy/v1/audio/generate" in str(caught.value)


# ----- refusing and mapping errors -----------------------------------------------------------
@pytest.mark.parametrize("api", ["flexserve", "vllm-omni"])
@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"seed": -1}, "parameters.seed"),
        ({"seed": 2**64}, "parameters.seed"),
        ({"seed": 1.5}, "parameters.seed"),
        ({"audio_end_in_s": 48.0}, "parameters.audio_end_in_s"),
        ({"audio_end_in_s": 0.0}, "parameters.audio_end_in_s"),
    ],
)
def test_a_bad_seed_or_duration_is_refused_before_sending(vllm_omni, api, bad, field):
    before = len(vllm_omni.requests)
    with AudioClient(vllm_omni.url, KEY, api=api) as client:
        with pytest.raises(InvalidParameters) as caught:
            client.generate("a tone", **{**CHEAP, **bad})
        with pytest.raises(InvalidParameters):
            client.curl_command("a tone", **{**CHEAP, **bad})
    assert caught.value.field == field and caught.value.allowed
    assert len(vllm_omni.requests) == before


def test_what_only_vllm_omni_cannot_express_is_refused_before_sending(vllm_omni):
    before = len(vllm_omni.requests)
    with omni_client(vllm_omni) as client:
        with pytest.raises(InvalidParameters, match=r"2\*\*63 - 1") as caught:
            client.generate("a tone", seed=2**63, **CHEAP)
        assert caught.value.field == "parameters.seed"
        with pytest.raises(InvalidParameters, match="needs audio_end_in_s") as caught:
            client.generate("a tone", audio_start_in_s=1.0)
        assert caught.value.field == "parameters.audio_start_in_s"
    assert len(vllm_omni.requests) == before
    # FlexServe takes both as they are.
    assert apis.FlexServe().body(GenerationRequest.build("a tone", seed=2**63))["parameters"]["seed"] == 2**63


def test_vllm_omni_errors_map_to_the_same_typed_errors(vllm_omni):
    with (
        AudioClient(vllm_omni.url, "sk-wrong-key", api="vllm-omni") as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.generate("a tone", **CHEAP)
    assert caught.value.status_code == 401 and caught.value.server_message == "Unauthorized"
    assert "sk-wrong-key" not in str(caught.value)

    # A body vLLM-Omni refuses (the client never sends one) maps through the same function.
    answer = httpx.post(
        vllm_omni.url + "/v1/audio/generate", json={"input": "  "}, headers={"Authorization": f"Bearer {KEY}"}
    )
    error = error_for_response(answer, body={"input": "  "})
    assert isinstance(error, InvalidParameters) and error.status_code == 400
    assert "input cannot be empty" in str(error)


# ----- the shell -----------------------------------------------------------------------------
def test_curl_command_posts_the_chosen_apis_body_and_route(vllm_omni, tmp_path):
    with omni_client(vllm_omni) as client:
        command = client.curl_command("a tone", output=str(tmp_path / "tone.wav"), seed=5, **CHEAP)
    assert command.endswith(shlex.quote(vllm_omni.url + "/v1/audio/generate"))
    assert KEY not in command
    env = {**os.environ, INFERENCE_API_KEY_ENV: KEY}
    subprocess.run(["bash", "-c", command + " --fail --silent"], check=True, env=env, timeout=60)
    assert last_body(vllm_omni) == {
        "input": "a tone",
        "audio_length": 1.0,
        "num_inference_steps": 2,
        "seed": 5,
        "response_format": "wav",
    }
    assert Clip.load(tmp_path / "tone.wav").frames == SAMPLE_RATE

    flexserve = AudioClient(vllm_omni.url, KEY, api="flexserve").curl_command("a tone", seed=5)
    assert '"inputs": "a tone"' in flexserve and flexserve.endswith("/v1/audios/generations")


def test_flexaudio_generate_with_api_vllm_omni(vllm_omni, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(INFERENCE_API_KEY_ENV, KEY)
    out = tmp_path / "tone.wav"
    args = ["generate", "a tone", "-o", str(out), "--seconds", "1", "--seed", "9", "--url", vllm_omni.url]
    assert main([*args, "--api", "vllm-omni"]) == 0
    assert Clip.load(out).frames == SAMPLE_RATE and last_body(vllm_omni)["seed"] == 9
    assert main([*args, "--api", "flexserve", "--retries", "0"]) == 1
    assert "--api vllm-omni" in capsys.readouterr().err


def test_an_x_seed_from_vllm_omni_never_replaces_the_seed_asked_for(vllm_omni):
    try:
        vllm_omni.answer_headers["X-Seed"] = "123"  # vLLM-Omni documents no such header
        with omni_client(vllm_omni) as client:
            assert client.generate("a tone", seed=5, **CHEAP).seed == 5
            vllm_omni.answer_headers["X-Seed"] = str(2**63)  # outside vLLM-Omni's signed 64-bit seeds
            with pytest.raises(InvalidResponse, match=r"X-Seed header is '9223372036854775808', not a seed"):
                client.generate("a tone", seed=5, **CHEAP)
    finally:
        vllm_omni.answer_headers.clear()
