"""Variations and audio-to-audio in this process, on the offline model (real diffusers pipeline, CPU).

The offline model's random VAE decoder barely depends on its latents (any latent decodes to
within ~3 % of the same noise), so audio-to-audio is checked where it happens: in latent space,
at the first denoising step and at the end.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch
from diffusers.utils.torch_utils import randn_tensor

from flexaudio_helpers import init_audio
from flexaudio_helpers.audio import Clip
from flexaudio_helpers.cli import main as cli
from flexaudio_helpers.errors import InvalidParameters
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.protocol import GENERATIONS_ROUTE
from flexaudio_helpers.serving.app import MAX_SOURCE_DECODES, TEXT_BODY_BYTES, create_app
from flexaudio_helpers.serving.audio_to_audio import DEFAULT_INIT_NOISE_LEVEL, source_waveform
from flexaudio_helpers.serving.pipeline import call_pipeline, load_generator

RATE = 44_100
REQUEST = GenerationRequest.build("rain on a roof", audio_end_in_s=1.0, num_inference_steps=2, seed=40)


def tone(seconds: float, rate: int = RATE, channels: int = 2) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 220 * (k + 2) * time) for k in range(channels)]).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def generator():
    return load_generator("offline", device="cpu")


def test_variations_are_the_single_requests_with_seeds_counted_up(generator):
    takes = generator.variations(REQUEST, 2)
    assert [take.seed for take in takes] == [40, 41]
    for take in takes:
        alone = generator.generate(REQUEST.with_parameters(seed=take.seed))
        # fp32 on this CPU: 1.7e-8 at most (batched matrix products round differently); peaks ~0.03.
        assert np.abs(take.samples - alone.samples).max() < 1e-6
    assert np.abs(takes[0].samples - takes[1].samples).max() > 1e-3


@pytest.mark.parametrize("count", [0, 9, 2.0])
def test_a_bad_variation_count_is_refused(generator, count):
    with pytest.raises(InvalidParameters, match=r"count: .*allowed: an integer from 1 to 8"):
        generator.variations(REQUEST, count)


def _run(generator, level, output_type="latent", source=None):
    """The final latents, and the latents the first step started from."""
    pipeline = generator.pipeline
    seen = []
    hook = pipeline.transformer.register_forward_pre_hook(lambda module, args: seen.append(args[0][:1]))
    try:
        with torch.inference_mode():
            final = call_pipeline(
                pipeline, generator.resolve(REQUEST), [40], None, source, level, output_type=output_type
            )
    finally:
        hook.remove()
    # The first transformer input is the start scaled by c_in = 1 / sqrt(sigma**2 + sigma_data**2).
    return final, seen[0] * (level**2 + 1.0) ** 0.5


# The default level in the fast tier; the edges of the range in the slow one (each encodes a window).
@pytest.mark.parametrize(
    "level",
    [
        pytest.param(0.31, marks=pytest.mark.slow),
        DEFAULT_INIT_NOISE_LEVEL,
        pytest.param(50.0, marks=pytest.mark.slow),
    ],
)
def test_the_source_starts_under_exactly_the_init_noise_level(generator, level):
    """Start = VAE encoding of the source + level x unit noise, the draws the pipeline's own
    generator makes (noise first, then the VAE posterior sample)."""
    source = tone(2.0)
    _, start = _run(generator, level, source=source)
    pipeline = generator.pipeline
    window = np.zeros((1, 2, 1024 * pipeline.vae.hop_length), np.float32)
    window[0, :, : source.shape[1]] = source
    draws = torch.Generator("cpu").manual_seed(40)
    with torch.inference_mode():
        noise = randn_tensor((1, pipeline.transformer.config.in_channels, 1024), generator=draws)
        encoded = pipeline.vae.encode(torch.from_numpy(window)).latent_dist.sample(draws)
    torch.testing.assert_close(start, encoded + level * noise, atol=1e-4 * (1 + level), rtol=1e-5)


def test_the_level_changes_the_result(generator):
    source = tone(2.0)
    low, _ = _run(generator, 0.31, source=source)
    default, _ = _run(generator, DEFAULT_INIT_NOISE_LEVEL, source=source)
    text_only, _ = _run(generator, 500.0)  # no source: text-to-audio (the level is not used)
    assert (low - default).abs().max() > 0.1
    assert (default - text_only).abs().max() > 0.1


def test_any_rate_and_mono_become_model_rate_stereo(generator, tmp_path):
    mono = tone(1.0, rate=22_050, channels=1)
    stereo = source_waveform((mono, 22_050), sample_rate=RATE, max_seconds=generator.max_seconds)
    assert stereo.shape == (2, RATE) and np.array_equal(stereo[0], stereo[1])
    path = tmp_path / "source.flac"
    sf.write(path, tone(1.0).T, RATE)
    # Every form becomes the same waveform (to 16-bit accuracy); one generation covers the rest.
    waveforms = [
        source_waveform(source, sample_rate=RATE, max_seconds=generator.max_seconds)
        for source in (path, Clip.load(path), (tone(1.0), RATE))
    ]
    for waveform in waveforms:
        assert waveform.shape == (2, RATE) and np.abs(waveform - waveforms[-1]).max() < 1e-4
    audio = generator.generate(REQUEST, source=path)
    assert audio.samples.shape == (2, RATE) and np.isfinite(audio.samples).all()


def test_bad_sources_and_levels_are_refused_naming_the_limit(generator, tmp_path):
    garbage = tmp_path / "not-audio.wav"
    garbage.write_bytes(b"RIFF but not really a wave file")
    cases = [
        ((tone(48.0), RATE), "source: 48.00 s is too long; allowed: at most 47.55 s"),
        ((tone(50.0, rate=8_000), 8_000), "source: 50.00 s is too long; allowed: at most 47.55 s"),
        (garbage, "source: cannot decode 'not-audio.wav' as audio"),
        ((tone(1.0, channels=3), RATE), "source: 3 channels, 44100 frames at 44100 Hz; allowed: 1 or 2"),
        ((np.full((2, 100), np.nan), RATE), "source: it has NaN or infinite samples"),
        ("no-such-file.wav", "source: cannot decode 'no-such-file.wav'"),
        (42, "source: expected a Clip or a .* pair, got int"),
    ]
    for source, message in cases:
        with pytest.raises(InvalidParameters, match=message) as refused:
            generator.generate(REQUEST, source=source)
        assert refused.value.field == "source"
    for level in (0.3, 0.1, float("nan"), 501.0, "1"):
        with pytest.raises(InvalidParameters, match=r"allowed: more than 0\.3 .* up to 500") as refused:
            generator.generate(REQUEST, source=(tone(1.0), RATE), init_noise_level=level)
        assert refused.value.field == "init_noise_level"
    with pytest.raises(InvalidParameters, match="init_noise_level: applies to audio-to-audio only"):
        generator.generate(REQUEST, init_noise_level=1.0)


# ----- sources that declare more than they weigh (issue 26) -----------------------------------
@pytest.fixture(scope="module")
def long_flac(tmp_path_factory) -> Path:
    """95 s of 48 kHz stereo silence: a few KB of FLAC that decode to 36 MB of float32."""
    path = tmp_path_factory.mktemp("long") / "long.flac"
    with sf.SoundFile(path, "w", 48_000, 2, format="FLAC", subtype="PCM_16") as stream:
        for _ in range(95):
            stream.write(np.zeros((48_000, 2), dtype=np.int16))
    return path


def _peak_mib(work) -> float:
    """The most memory Python and numpy held while `work()` ran, in MiB (tracemalloc)."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_a_source_declaring_too_long_is_refused_from_its_header(long_flac):
    text = base64.b64encode(long_flac.read_bytes()).decode("ascii")
    assert len(text) < TEXT_BODY_BYTES  # a small body: it had no decode limit

    def decode():
        with pytest.raises(InvalidParameters, match=r"parameters.init_audio: 95.00 s is too long"):
            init_audio.decode(text)

    assert _peak_mib(decode) < 4  # decoding it first held 36 MiB and more


def test_flexaudio_generate_refuses_a_too_long_init_audio_from_its_header(long_flac, tmp_path, capsys):
    out = tmp_path / "out.wav"
    args = ["generate", "rain", "-o", str(out), "--init-audio", str(long_flac), "--url", "http://127.0.0.1:9"]
    peak = _peak_mib(lambda: cli(args) == 2 or pytest.fail("not refused as a usage error"))
    assert "--init-audio: 95.00 s is too long" in capsys.readouterr().err
    assert peak < 4 and not out.exists()


def test_every_source_is_decoded_two_at_a_time_whatever_the_body_size(generator, monkeypatch):
    decode, running, most = init_audio.decode, [0], [0]
    lock = threading.Lock()

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.2)  # long enough for every request to be waiting
            return decode(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(init_audio, "decode", counted)
    three_channels = io.BytesIO()
    sf.write(three_channels, tone(0.1, channels=3).T, RATE, format="FLAC")
    body = {
        "inputs": "rain",
        "parameters": {"init_audio": base64.b64encode(three_channels.getvalue()).decode("ascii")},
    }

    async def send_ten():
        transport = httpx.ASGITransport(app=create_app(generator, "k" * 20))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"Authorization": "Bearer " + "k" * 20}
            posts = [client.post(GENERATIONS_ROUTE, json=body, headers=headers) for _ in range(10)]
            return await asyncio.gather(*posts)

    answers = asyncio.run(send_ten())
    assert [answer.status_code for answer in answers] == [422] * 10  # refused after decoding: 3 channels
    assert most[0] == MAX_SOURCE_DECODES == 2
