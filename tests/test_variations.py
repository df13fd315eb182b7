"""Variations and audio-to-audio beyond the pipeline: through the endpoint (client, CLI, the body's
``init_audio`` extension) and in this process (`generate_here`, `variations_here`).

HTTP goes to the shared offline endpoint (`offline_server`), to the vLLM-Omni stand-in, or to an
``httpx.MockTransport`` that records every request, so "nothing sent" is counted, not assumed.
"""

from __future__ import annotations

import base64
import io
import json
import secrets

import httpx
import numpy as np
import pytest
import soundfile as sf
from vllm_omni_stand_in import StandIn

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.cli import main
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.errors import InvalidParameters, UnsupportedParameter
from flexaudio_helpers.inprocess import generate_here, variations_here
from flexaudio_helpers.params import MAX_INIT_AUDIO_BYTES, GenerationRequest
from flexaudio_helpers.protocol import GENERATIONS_ROUTE, MODELS_ROUTE, SEED_HEADER
from flexaudio_helpers.serving.app import MAX_BODY_BYTES, TEXT_BODY_BYTES
from flexaudio_helpers.serving.pipeline import load_generator

RATE = 44_100
CHEAP = {"audio_end_in_s": 1.0, "num_inference_steps": 2}
LIMIT = r"allowed: an integer from 1 to 8"


def tone(seconds: float, rate: int = RATE, channels: int = 2) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 220 * (k + 2) * time) for k in range(channels)]).astype(
        np.float32
    )


def flac_file(path, seconds: float, rate: int = RATE):
    sf.write(path, tone(seconds, rate, channels=1).T, rate, format="FLAC")
    return path


@pytest.fixture
def client(offline_server):
    with AudioClient(offline_server.url, offline_server.api_key) as client:
        yield client


class Recorder:
    """A MockTransport handler: `models` answers GET /v1/models; every request is recorded."""

    def __init__(self, models: httpx.Response) -> None:
        self.models = models
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == MODELS_ROUTE:
            return self.models
        buffer = io.BytesIO()
        sf.write(buffer, tone(0.1).T, RATE, format="WAV")
        return httpx.Response(200, content=buffer.getvalue(), headers={SEED_HEADER: "1"})

    def generations(self) -> int:
        return sum(request.url.path == GENERATIONS_ROUTE for request in self.requests)


def mock_client(recorder: Recorder) -> AudioClient:
    return AudioClient("https://flexserve.example", "sk-mock", transport=httpx.MockTransport(recorder))


def cards(**extra) -> httpx.Response:
    return httpx.Response(200, json={"object": "list", "data": [{"id": "x", "object": "model", **extra}]})


# ----- variations through the endpoint -------------------------------------------------------
def test_variations_replay_alone_bit_for_bit_and_the_same_call_gives_the_same_clips(client):
    takes = client.variations("rain on a roof", 3, seed=2**64 - 2, **CHEAP)
    assert [take.seed for take in takes] == [2**64 - 2, 2**64 - 1, 0]  # counted up, wrapping like torch
    assert [take.request.parameters.seed for take in takes] == [take.seed for take in takes]
    alone = client.generate(takes[2].request)  # each records its own seed: it replays alone
    assert np.array_equal(alone.samples, takes[2].samples)
    again = client.variations("rain on a roof", 3, seed=2**64 - 2, **CHEAP)
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(takes, again, strict=True))
    assert np.abs(takes[0].samples - takes[1].samples).max() > 1e-3
    drawn = client.variations("rain on a roof", 2, **CHEAP)  # no seed: one drawn, counted up
    assert drawn[1].seed == drawn[0].seed + 1


@pytest.mark.parametrize("count", [0, -1, 9, 2.0, True])
def test_a_count_out_of_range_is_refused_before_anything_is_sent(count):
    recorder = Recorder(cards(extensions=["init_audio"]))
    with (
        mock_client(recorder) as client,
        pytest.raises(InvalidParameters, match=f"count: .*{LIMIT}") as caught,
    ):
        client.variations("rain", count)
    assert caught.value.field == "count" and recorder.requests == []


def test_bad_sources_and_levels_are_refused_naming_the_limit_before_anything_is_sent(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....WAVE but nothing after it")
    long_file = flac_file(tmp_path / "long.flac", 60.0, rate=8_000)
    cases = [
        ({"init_audio": junk}, "init_audio", "init_audio: cannot decode 'junk.wav' as audio"),
        ({"init_audio": long_file}, "init_audio", r"60.00 s is too long; allowed: at most 47.55 s"),
        (
            {"init_audio": (tone(60.0, 8_000), 8_000)},
            "init_audio",
            r"60.00 s is too long; allowed: at most 47.55",
        ),
        (
            {"init_audio": (tone(1.0), RATE), "init_noise_level": 0},
            "parameters.init_noise_level",
            r"above 0.3",
        ),
        (
            {"init_audio": (tone(1.0), RATE), "init_noise_level": -2.0},
            "parameters.init_noise_level",
            r"up to 500",
        ),
        (
            {"init_audio": (tone(1.0), RATE), "init_noise_level": 0.3},
            "parameters.init_noise_level",
            r"above 0.3",
        ),
        (
            {"init_audio": (tone(1.0), RATE), "init_noise_level": 501.0},
            "parameters.init_noise_level",
            r"up to 500",
        ),
        ({"init_noise_level": 2.0}, "parameters.init_noise_level", "applies to audio-to-audio only"),
    ]
    recorder = Recorder(cards(extensions=["init_audio"]))
    with mock_client(recorder) as client:
        for options, field, message in cases:
            for count in (None, 2):
                with pytest.raises(InvalidParameters, match=message) as caught:
                    if count is None:
                        client.generate("rain", **options)
                    else:
                        client.variations("rain", count, **options)
                assert caught.value.field == field
    assert recorder.requests == []


# ----- audio-to-audio needs the extension ---------------------------------------------------
@pytest.mark.parametrize(
    "models",
    [
        cards(),  # a FlexServe-like answer without our extension
        cards(extensions=["something-else"]),
        httpx.Response(404, json={"detail": "Not Found"}),  # FlexAI's FlexServe documents no /v1/models
    ],
)
def test_init_audio_on_an_endpoint_without_the_extension_is_refused_before_generating(models):
    recorder = Recorder(models)
    with mock_client(recorder) as client:
        for call in (client.generate, lambda *a, **k: client.variations(a[0], 2, **k)):
            with pytest.raises(
                UnsupportedParameter, match=r"local endpoint .* does not list the 'init_audio'"
            ):
                call("rain", init_audio=(tone(1.0), RATE))
        assert client.generate("rain").seed == 1  # text-to-audio still goes
    assert recorder.generations() == 1


def test_init_audio_to_vllm_omni_is_refused_without_sending_anything():
    key = f"sk-vllm-{secrets.token_hex(8)}"
    with StandIn(api_key=key) as server, AudioClient(server.url, key, api="vllm-omni") as client:
        with pytest.raises(UnsupportedParameter, match="vLLM-Omni's API does not document it") as caught:
            client.generate("a tone", init_audio=(tone(1.0), RATE))
        assert caught.value.field == "init_audio"
        with pytest.raises(UnsupportedParameter):
            client.variations("a tone", 2, init_audio=(tone(1.0), RATE))
        # A clip's request from audio-to-audio (its level recorded) is not silently run as text-to-audio.
        replay = GenerationRequest.build("a tone", init_noise_level=2.0)
        with pytest.raises(InvalidParameters, match="applies to audio-to-audio only"):
            client.generate(replay)
        with pytest.raises(InvalidParameters, match=r"parameters\.init_noise_level: audio-to-audio runs on"):
            client.api.body(replay)
        assert server.requests == []


# ----- audio-to-audio through our local endpoint ------------------------------------------
def test_init_audio_through_the_local_endpoint_records_the_level_and_the_level_matters(client, tmp_path):
    assert client.models()["data"][0]["extensions"] == ["init_audio", "keep_ranges"]
    source = flac_file(tmp_path / "source.flac", 2.0, rate=22_050)  # resampled and widened by the server
    default = client.generate("rain", init_audio=source, seed=5, **CHEAP)
    assert default.request.parameters.init_noise_level == 1.0  # the default, recorded
    assert default.request.parameters.init_audio is None  # the level, not the audio
    text_only = client.generate("rain", seed=5, **CHEAP)
    assert np.abs(text_only.samples - default.samples).max() > 1e-3
    takes = client.variations("rain", 2, init_audio=Clip.load(source), init_noise_level=50.0, seed=5, **CHEAP)
    assert [take.request.parameters.init_noise_level for take in takes] == [50.0, 50.0]
    assert [take.seed for take in takes] == [5, 6]
    assert np.abs(takes[0].samples - default.samples).max() > 1e-3  # same seed, another level


def post(server, body: dict | bytes, **headers) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{server.url}{GENERATIONS_ROUTE}",
        content=content,
        headers={**server.headers(), **headers},
        timeout=60,
    )


def test_the_endpoint_refuses_bad_sources_in_the_body_naming_the_field(offline_server, tmp_path):
    def body(**parameters) -> dict:
        return {"inputs": "rain", "parameters": {**CHEAP, **parameters}}

    long_source = base64.b64encode(flac_file(tmp_path / "long.flac", 60.0, rate=8_000).read_bytes()).decode()
    broken_wav = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt nonsense").decode()
    cases = [
        (body(init_audio="not base64!"), "parameters.init_audio", "not base64"),
        (body(init_audio=base64.b64encode(b"plain text").decode()), "parameters.init_audio", "WAV or FLAC"),
        (body(init_audio=broken_wav), "parameters.init_audio", "not a readable WAV or FLAC file"),
        (
            body(init_audio=long_source),
            "parameters.init_audio",
            "60.00 s is too long; allowed: at most 47.55",
        ),
        (body(init_noise_level=2.0), "parameters.init_noise_level", "applies to audio-to-audio only"),
        (body(init_audio=long_source, init_noise_level=0.0), "parameters.init_noise_level", "above 0.3"),
        (body(init_audio="A" * (4 * -(-MAX_INIT_AUDIO_BYTES // 3) + 4)), "parameters.init_audio", "10485760"),
    ]
    for sent, field, message in cases:
        answer = post(offline_server, sent)
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["error"]["param"] == field and message in answer.json()["error"]["message"]
    too_big = post(offline_server, b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert too_big.status_code == 413
    chunked = httpx.post(
        f"{offline_server.url}{GENERATIONS_ROUTE}",
        content=iter([b" " * TEXT_BODY_BYTES, b"{}"]),  # no Content-Length: only a text body's room
        headers=offline_server.headers(),
    )
    assert chunked.status_code == 413 and "Content-Length" in chunked.json()["error"]["message"]
    assert post(offline_server, body(seed=1)).status_code == 200


# ----- the command line ---------------------------------------------------------------------
def test_cli_variations_and_init_audio(offline_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFERENCE_URL", offline_server.url)
    monkeypatch.setenv("INFERENCE_API_KEY", offline_server.api_key)
    argv = ["generate", "rain", "-o", str(tmp_path / "rain.wav"), "--seconds", "1", "--steps", "2"]
    assert main([*argv, "--variations", "2", "--seed", "9"]) == 0
    assert [Clip.load(tmp_path / f"rain-{k}.wav").seed for k in (1, 2)] == [9, 10]
    assert not (tmp_path / "rain.wav").exists()
    source = flac_file(tmp_path / "source.flac", 1.0)
    assert main([*argv, "--init-audio", str(source), "--init-noise-level", "2"]) == 0
    assert Clip.load(tmp_path / "rain.wav").request.parameters.init_noise_level == 2.0
    capsys.readouterr()
    for extra, message in [
        (["--variations", "9"], f"--variations: 9 variations is not allowed; {LIMIT}"),
        (["--init-noise-level", "2"], "--init-noise-level 2.0 applies to audio-to-audio only"),
        (["--init-audio", str(tmp_path / "none.wav")], "no such file"),
        (["--init-audio", str(source), "--init-noise-level", "0"], "--init-noise-level 0.0 is not allowed"),
    ]:
        assert main([*argv, *extra]) == 2, extra
        assert message in capsys.readouterr().err


def test_cli_variations_check_every_output_before_generating(offline_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFERENCE_URL", offline_server.url)
    monkeypatch.setenv("INFERENCE_API_KEY", offline_server.api_key)
    (tmp_path / "rain-2.wav").mkdir()
    argv = ["generate", "rain", "-o", str(tmp_path / "rain.wav"), "--seconds", "1", "--steps", "2"]
    assert main([*argv, "--variations", "3"]) == 2
    assert f"cannot write {tmp_path / 'rain-2.wav'}: a folder is in its place" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rain-2.wav"]  # rain-1.wav not written


# ----- in this process --------------------------------------------------------------------
@pytest.fixture(scope="module")
def generator():
    return load_generator("offline", device="cpu")


@pytest.mark.slow  # a pipeline of its own in this process (test_audio_to_audio covers the generator)
def test_in_process_variations_and_audio_to_audio(generator):
    takes = variations_here(generator, "rain", 2, seed=3, **CHEAP)
    assert [(take.seed, take.request.parameters.seed) for take in takes] == [(3, 3), (4, 4)]
    alone = generate_here(generator, takes[1].request)
    assert np.abs(alone.samples - takes[1].samples).max() < 1e-6  # fp32: within 2e-8, not bit-equal
    clip = generate_here(
        generator, "rain", init_audio=(tone(1.0), RATE), init_noise_level=2.0, seed=3, **CHEAP
    )
    assert clip.request.parameters.init_noise_level == 2.0 and clip.request.parameters.init_audio is None
    with pytest.raises(InvalidParameters, match="applies to audio-to-audio only"):
        generate_here(generator, "rain", init_noise_level=2.0)
    with pytest.raises(InvalidParameters, match=LIMIT):
        variations_here(generator, "rain", 9)
