"""Extend, loop and repaint through an endpoint: one request per window (the ``keep_ranges``
extension of our local endpoint), chained by the same code as in this process (`longer`)."""

from __future__ import annotations

import secrets

import httpx
import numpy as np
import pytest
import soundfile as sf
from vllm_omni_stand_in import StandIn

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.cli import main
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.errors import UnsupportedParameter
from flexaudio_helpers.longer import extend, loop, repaint
from flexaudio_helpers.serving.pipeline import load_generator

RATE = 44_100
FAST = {"num_inference_steps": 2}
WINDOW = 1024 * 2048


def tone(seconds: float) -> np.ndarray:
    time = np.arange(round(seconds * RATE)) / RATE
    wave = 0.05 * (1 + 4 * time / seconds) * np.sin(2 * np.pi * 233 * time)
    return np.stack([wave, wave * 0.9]).astype(np.float32)


@pytest.fixture(scope="module")
def client(offline_server):
    with AudioClient(offline_server.url, offline_server.api_key) as client:
        yield client


def test_one_window_through_the_endpoint_is_the_whole_window(client):
    assert "keep_ranges" in client.models()["data"][0]["extensions"]
    clip = client.window("rain", (tone(3.0), RATE), [(0.0, 2.0)], seed=4, **FAST)
    assert clip.frames == WINDOW and clip.seed == 4 and clip.request.parameters.keep_ranges is None


def test_extend_through_the_endpoint_chains_the_same_way_as_here(client, tmp_path):
    source = tmp_path / "source.wav"
    sf.write(source, tone(5.0).T, RATE, subtype="PCM_16")
    there = extend(client, source, to=50.0, prompts=["dawn", "rain"], out=tmp_path / "there.wav",
                   progress=lambda *args: None, seed=8, **FAST)  # fmt: skip
    here = extend(load_generator("offline", device="cpu"), source, to=50.0, prompts=["dawn", "rain"],
                  out=tmp_path / "here.wav", progress=lambda *args: None, seed=8, **FAST)  # fmt: skip
    original, _ = sf.read(source, dtype="int16")
    far, _ = sf.read(there, dtype="int16")
    near, _ = sf.read(here, dtype="int16")
    assert len(far) == len(near) == 50 * RATE
    join = len(original) - round(0.05 * RATE)
    assert np.array_equal(far[:join], original[:join])
    # The first window keeps the same source samples with the same seed: the same audio, whichever
    # side ran it (the endpoint's process may round a last bit differently).
    first_window = slice(len(original), len(original) + WINDOW - 215 * 2048 - 2205)
    assert np.abs(far[first_window].astype(int) - near[first_window]).max() <= 2
    assert Clip.load(there).lineage["windows"] == Clip.load(here).lineage["windows"]


def test_repaint_and_loop_through_the_endpoint(client):
    clip = Clip(tone(6.0), RATE)
    painted = repaint(client, clip, 2.0, 3.0, prompt="thunder", seed=1, **FAST)
    assert np.array_equal(painted.samples[:, : 2 * RATE], clip.samples[:, : 2 * RATE])
    assert np.array_equal(painted.samples[:, 3 * RATE :], clip.samples[:, 3 * RATE :])
    assert painted.offline and painted.lineage["section"] == [2.0, 3.0]
    looped = loop(client, clip, bars=2, bpm=120.0, prompt="drums", seed=1, **FAST)
    assert looped.frames == 4 * RATE


def _flexserve_without_the_extension(sent: list) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(404, json={"detail": "Not Found"})  # FlexServe documents no /v1/models

    return httpx.MockTransport(answer)


def test_flexai_and_vllm_omni_are_refused_before_anything_is_sent(tmp_path):
    key = f"sk-vllm-{secrets.token_hex(8)}"
    with StandIn(api_key=key) as server, AudioClient(server.url, key, api="vllm-omni") as vllm:
        with pytest.raises(UnsupportedParameter, match=r"local endpoint .* vLLM-Omni's API") as caught:
            repaint(vllm, Clip(tone(4.0), RATE), 1.0, 2.0, prompt="x", **FAST)
        assert caught.value.field == "keep_ranges" and server.requests == []
    sent: list = []
    flexserve = AudioClient("http://flexai.invalid", "key", transport=_flexserve_without_the_extension(sent))
    with flexserve, pytest.raises(UnsupportedParameter, match="does not list the 'keep_ranges' extension"):
        extend(flexserve, Clip(tone(4.0), RATE), to=60.0, prompts="x", out=tmp_path / "x.wav", **FAST)
    assert sent == ["/v1/models"] and list(tmp_path.iterdir()) == []


def test_the_cli_verbs_find_the_endpoint_as_generate_does(offline_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFERENCE_URL", offline_server.url)
    monkeypatch.setenv("INFERENCE_API_KEY", offline_server.api_key)
    source = tmp_path / "in.wav"
    sf.write(source, tone(6.0).T, RATE, subtype="PCM_16")
    out = tmp_path / "out.wav"
    fast = ["--steps", "2", "--seed", "3"]
    assert main(["extend", str(source), "-o", str(out), "--to", "40", "--prompt", "a", *fast]) == 0
    piece = Clip.load(out)
    assert piece.frames == 40 * RATE and [w["prompt"] for w in piece.lineage["windows"]] == ["a"]
    assert (
        main(["repaint", str(source), "-o", str(out), "--from", "1", "--to", "2", "--prompt", "x", *fast])
        == 0
    )
    assert Clip.load(out).lineage["section"] == [1.0, 2.0]
    assert (
        main(["loop", str(source), "-o", str(out), "--bars", "1", "--bpm", "120", "--prompt", "x", *fast])
        == 0
    )
    assert Clip.load(out).frames == 2 * RATE
    assert "wrote" in capsys.readouterr().out
    new = tmp_path / "new.wav"
    for argv, message in [
        (["extend", str(source), "--to", "3", "--prompt", "a"], "--to: 3.0 is out of range"),
        (["extend", str(source), "--to", "60", "--prompt", "a", "--seconds", "9"], "--seconds: each window"),
        (["extend", str(tmp_path / "none.wav"), "--to", "60", "--prompt", "a"], "no such file"),
        (["repaint", str(source), "--from", "3", "--to", "3", "--prompt", "x"], "--to: 3.0 is out of range"),
        (["loop", str(source), "--bars", "0", "--bpm", "120", "--prompt", "x"], "--bars: 0 is out of range"),
        (["loop", str(source), "--bars", "1", "--bpm", "nan", "--prompt", "x"], "--bpm: nan is out of range"),
    ]:
        assert main([*argv, "-o", str(new)]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not new.exists()
