"""The local FlexServe-compatible endpoint, over real HTTP, running the real diffusers
pipeline with the offline model."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import psutil
import pyloudnorm
import pytest
import soundfile as sf
from conftest import EXAMPLE_1, start_server, stop_server

from flexaudio_helpers.params import MAX_AUDIO_SECONDS
from flexaudio_helpers.serving.app import MAX_BODY_BYTES

ROUTE = "/v1/audios/generations"


def post(server, body, *, key=None, timeout=120, **kwargs):
    headers = {} if key == "" else server.headers(key)
    return httpx.post(f"{server.url}{ROUTE}", json=body, headers=headers, timeout=timeout, **kwargs)


def small(seed=1, **parameters):
    """A cheap valid request: few steps, short clip."""
    return {
        "inputs": "a short test sound",
        "parameters": {"audio_end_in_s": 1.0, "num_inference_steps": 2, "seed": seed, **parameters},
    }


def read_wav(content: bytes):
    samples, rate = sf.read(io.BytesIO(content), dtype="float32")
    return samples, rate


def assert_still_serving(server):
    response = post(server, small())
    assert response.status_code == 200, response.text
    assert response.content[:4] == b"RIFF"


def test_seed_example_1_gives_a_valid_ten_second_stereo_wav(offline_server):
    response = post(offline_server, EXAMPLE_1)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["x-seed"] == "42"
    assert float(response.headers["x-generation-seconds"]) > 0
    assert response.headers["x-offline-model"] == "true"
    info = sf.info(io.BytesIO(response.content))
    assert (info.samplerate, info.channels, info.frames) == (44_100, 2, 441_000)
    assert info.subtype == "PCM_16"
    samples, _ = read_wav(response.content)
    assert np.abs(samples).max() > 0.01  # not silence


def test_offline_noise_comes_at_a_comfortable_level(offline_server):
    """Random weights used to give near-full-scale noise (-7.7 LUFS, peaks at -5 dBFS)."""
    samples, rate = read_wav(post(offline_server, EXAMPLE_1).content)
    lufs = pyloudnorm.Meter(rate).integrated_loudness(samples)
    peak_dbfs = 20 * np.log10(np.abs(samples).max())
    assert -50 < lufs <= -30, lufs
    assert peak_dbfs <= -12, peak_dbfs


def test_same_seed_same_bytes_and_other_seed_other_audio(offline_server):
    first, again, other = (post(offline_server, small(seed=seed)) for seed in (7, 7, 8))
    assert first.content == again.content
    assert not np.array_equal(read_wav(first.content)[0], read_wav(other.content)[0])


def test_a_missing_seed_is_drawn_and_reported(offline_server):
    body = small()
    del body["parameters"]["seed"]
    response = post(offline_server, body)
    assert response.status_code == 200
    seed = int(response.headers["x-seed"])
    replay = post(offline_server, small(seed=seed))
    assert replay.content == response.content


@pytest.mark.parametrize("key", ["", "wrong-key"])
def test_missing_or_wrong_key_is_401(offline_server, key):
    response = post(offline_server, small(), key=key)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert "wrong-key" not in response.text and offline_server.api_key not in response.text


BAD_PARAMETERS = [
    ("audio_end_in_s", 0),
    ("audio_end_in_s", -5.0),
    ("audio_end_in_s", 60.0),
    ("audio_start_in_s", -1.0),
    ("num_inference_steps", 0),
    ("num_inference_steps", 100_000),
    ("num_inference_steps", 2.5),
    ("guidance_scale", -1.0),
    ("seed", -1),
    ("seed", 2**64),
    ("seed", "42"),
    ("negative_prompt", 5),
    ("num_waveforms_per_prompt", 2),
]


@pytest.mark.parametrize(("field", "value"), BAD_PARAMETERS)
def test_each_bad_parameter_is_422_naming_the_field(offline_server, field, value):
    body = small()
    body["parameters"][field] = value
    response = post(offline_server, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == f"parameters.{field}"
    assert field in error["message"]
    if field == "num_waveforms_per_prompt":
        assert "allowed names: audio_end_in_s" in error["message"]
    else:
        assert "allowed:" in error["message"]


def test_bad_prompts_are_422(offline_server):
    for prompt in ["", "   ", "x" * 2001, 12]:
        response = post(offline_server, {"inputs": prompt, "parameters": {}})
        assert response.status_code == 422
        assert response.json()["error"]["param"] == "inputs"
    assert post(offline_server, {"parameters": {}}).json()["error"]["param"] == "inputs"
    assert_still_serving(offline_server)


def test_over_the_length_limit_says_the_limit(offline_server):
    response = post(offline_server, small(audio_end_in_s=48.0))
    assert response.status_code == 422
    assert f"{MAX_AUDIO_SECONDS:.4f}" in response.json()["error"]["message"]
    start_after_end = post(offline_server, small(audio_start_in_s=2.0, audio_end_in_s=1.0))
    assert start_after_end.json()["error"]["param"] == "parameters.audio_start_in_s"


def test_length_alias_is_accepted_and_both_together_refused(offline_server):
    body = small()
    body["parameters"].pop("audio_end_in_s")
    body["parameters"]["audio_length_in_s"] = 2.0
    response = post(offline_server, body)
    assert response.status_code == 200, response.text
    assert sf.info(io.BytesIO(response.content)).frames == 88_200
    body["parameters"]["audio_end_in_s"] = 2.0
    both = post(offline_server, body)
    assert both.status_code == 422
    assert both.json()["error"]["param"] == "parameters.audio_length_in_s"


def test_malformed_and_oversized_bodies(offline_server):
    url = f"{offline_server.url}{ROUTE}"
    invalid = httpx.post(url, content=b"{not json", headers=offline_server.headers())
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "body"
    not_object = httpx.post(url, content=b"[1, 2]", headers=offline_server.headers())
    assert not_object.status_code == 422
    huge = httpx.post(url, content=b"x" * (MAX_BODY_BYTES + 1), headers=offline_server.headers())
    assert huge.status_code == 413
    assert_still_serving(offline_server)


def test_unknown_route_is_404_json_and_models_describes_the_offline_model(offline_server):
    missing = httpx.get(f"{offline_server.url}/v1/audios/generations/v1/audios/generations")
    assert missing.status_code == 404
    assert "POST /v1/audios/generations" in missing.json()["error"]["message"]
    model = httpx.get(f"{offline_server.url}/v1/models").json()["data"][0]
    assert model["offline"] is True and "noise" in model["notice"]
    assert (model["sample_rate"], model["channels"]) == (44_100, 2)
    assert model["max_audio_seconds"] == pytest.approx(47.5545, abs=1e-4)
    assert httpx.get(f"{offline_server.url}/health").json()["status"] == "ok"


@pytest.mark.slow  # a server of its own with --max-waiting 1
def test_a_full_queue_answers_503_with_retry_after(tmp_path):
    server = start_server(tmp_path, "--max-waiting", "1")
    try:
        with ThreadPoolExecutor(max_workers=5) as pool:
            responses = list(pool.map(lambda seed: post(server, small(seed=seed)), range(5)))
        statuses = sorted(response.status_code for response in responses)
        assert statuses.count(200) >= 2 and 503 in statuses, statuses
        busy = next(response for response in responses if response.status_code == 503)
        assert int(busy.headers["retry-after"]) >= 1
        assert json.loads(busy.text)["error"]["type"] == "server_busy"
        assert_still_serving(server)
    finally:
        stop_server(server)
    assert server.api_key not in server.log()


def test_the_server_binds_loopback_by_default(offline_server):
    listening = [
        connection.laddr
        for connection in psutil.Process(offline_server.process.pid).net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    ]
    assert listening and all(address.ip == "127.0.0.1" for address in listening), listening
