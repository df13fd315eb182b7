"""Clips: metadata round trip, atomic saves, the compact inline player, quality facts, decoding.

Synthetic audio with known answers; one test decodes a real response of the offline endpoint.
"""

from __future__ import annotations

import base64
import io
import os
import re
import string

import httpx
import numpy as np
import pytest
import soundfile as sf
from IPython.display import Audio

from flexaudio_helpers.audio import Clip, decode_audio, measure
from flexaudio_helpers.errors import FlexAudioError, InvalidAudioResponse
from flexaudio_helpers.files import TEMPORARY_SUFFIX
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.protocol import GENERATIONS_ROUTE, OFFLINE_NOTICE, sniff_format

RATE = 44_100
PCM16_STEP = 1 / 32768


def chord(seconds: float = 10.0, rate: int = RATE) -> np.ndarray:
    """Realistic stereo test audio: an A major chord with a slow swell, plus a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    notes = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((220.0, 277.18, 329.63, 440.0)))
    swell = 0.6 + 0.4 * np.sin(np.pi * t / 4.0)
    noise = np.random.default_rng(0).standard_normal((2, t.size)) * 0.02
    left = 0.25 * notes * swell
    return (np.stack([left, 0.8 * np.roll(left, 300)]) + noise).astype(np.float32)


def encoded(samples: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples.T, RATE, format=fmt, **options)
    return buffer.getvalue()


REQUEST = GenerationRequest.build(
    "Warm analog synth pad, slow attack",
    audio_end_in_s=2.0,
    num_inference_steps=100,
    guidance_scale=7.5,
    negative_prompt="low quality, distortion",
)


def leftovers(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(TEMPORARY_SUFFIX))


# ----- files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_save_then_load_restores_samples_request_and_seed(tmp_path, suffix):
    clip = Clip(chord(2.0), RATE, REQUEST, seed=1234, offline=True)
    path = clip.save(tmp_path / f"pad{suffix}")
    loaded = Clip.load(path)

    assert sf.info(path).format == suffix[1:].upper()
    assert loaded.request.to_body() == REQUEST.to_body()
    assert loaded.seed == 1234
    assert loaded.offline is True
    assert loaded.samples.shape == clip.samples.shape
    assert np.abs(loaded.samples - clip.samples).max() <= PCM16_STEP
    # The request did not carry the seed; the reproducible one does, and nothing else changed.
    again = loaded.reproducible_request()
    assert again.parameters.seed == 1234
    assert again.to_body() == {
        **REQUEST.to_body(),
        "parameters": {**REQUEST.to_body()["parameters"], "seed": 1234},
    }
    assert leftovers(tmp_path) == []


def test_reproducible_request_keeps_a_request_that_already_has_the_seed():
    request = REQUEST.with_parameters(seed=7)
    assert Clip(chord(0.5), RATE, request, seed=7).reproducible_request() is request
    assert Clip(chord(0.5), RATE).reproducible_request() is None


def test_a_long_compressible_prompt_still_fits_in_wav_metadata(tmp_path):
    prompt = ("soft rain on a tin roof, distant thunder, " * 45)[:2000]
    clip = Clip(chord(0.5), RATE, GenerationRequest.build(prompt, guidance_scale=3.0), seed=5)
    loaded = Clip.load(clip.save(tmp_path / "rain.wav"))
    assert loaded.prompt == prompt
    assert loaded.seed == 5


def test_an_incompressible_long_prompt_is_refused_for_wav_and_nothing_is_written(tmp_path):
    rng = np.random.default_rng(1)
    prompt = "".join(rng.choice(list(string.ascii_letters + string.digits), 2000))
    clip = Clip(chord(0.5), RATE, GenerationRequest.build(prompt), seed=5)
    with pytest.raises(FlexAudioError, match=r"\.flac"):
        clip.save(tmp_path / "long.wav")
    assert os.listdir(tmp_path) == []
    assert Clip.load(clip.save(tmp_path / "long.flac")).prompt == prompt  # FLAC has no such limit


def test_a_failed_save_leaves_no_partial_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "keep.wav"
    Clip(chord(0.5), RATE, REQUEST, seed=1).save(target)
    before = target.read_bytes()
    with pytest.raises((ValueError, sf.LibsndfileError)):
        Clip(chord(1.0), RATE, REQUEST, seed=2).save(target, subtype="NOT_A_SUBTYPE")
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["keep.wav"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_saving_into_a_read_only_folder_fails_cleanly(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            Clip(chord(0.5), RATE).save(folder / "clip.wav")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_save_refuses_other_extensions(tmp_path):
    with pytest.raises(FlexAudioError, match=r"\.wav or \.flac"):
        Clip(chord(0.5), RATE).save(tmp_path / "clip.mp3")
    assert os.listdir(tmp_path) == []


def test_loading_a_foreign_file_gives_a_clip_without_request(tmp_path):
    path = tmp_path / "other.wav"
    sf.write(path, chord(0.5).T, RATE)
    clip = Clip.load(path)
    assert (clip.request, clip.seed, clip.offline) == (None, None, False)
    assert clip.channels == 2
    assert clip.duration == pytest.approx(0.5)


def test_samples_in_soundfile_order_are_refused():
    with pytest.raises(ValueError, match="transpose"):
        Clip(chord(0.5).T, RATE)


# ----- display ---------------------------------------------------------------------------------
def test_the_inline_player_of_10_s_stereo_is_under_250_kb_and_far_lighter_than_ipython_audio():
    samples = chord(10.0)
    ours = Clip(samples, RATE, REQUEST, seed=3)._repr_html_().encode()
    theirs = Audio(samples, rate=RATE)._repr_html_().encode()
    assert len(ours) <= 250_000
    assert len(theirs) >= 5 * len(ours)


def test_the_player_embeds_mp3_of_the_whole_clip_which_every_browser_plays():
    clip = Clip(chord(10.0), RATE, REQUEST, seed=3)
    page = clip._repr_html_()
    assert "<audio controls" in page
    data = re.search(r'src="data:audio/mpeg;base64,([A-Za-z0-9+/=]+)" type="audio/mpeg"', page).group(1)
    # soundfile, not decode_audio: this MP3 has no LAME info frame (lameenc writes none), so libsndfile
    # estimates its length from the bitrate, under one MP3 frame off, which decode_audio calls truncated.
    samples, rate = sf.read(io.BytesIO(base64.b64decode(data)), dtype="float32", always_2d=True)
    samples = samples.T
    assert rate == RATE
    assert samples.shape[0] == 2
    assert samples.shape[1] == pytest.approx(clip.frames, abs=2048)
    # Still the same sound: the loudness survives the lossy encoding within 1 dB (about the smallest
    # step a listener hears). LAME at a constant bitrate plays this chord 0.5 dB quieter, through
    # libsndfile's MP3 as through lameenc; a variable bitrate would need an info frame lameenc cannot write.
    assert measure(samples, rate).lufs == pytest.approx(clip.facts.lufs, abs=1.0)


def test_audio_mp3_cannot_hold_is_embedded_as_ogg_vorbis():
    for samples, rate in ((chord(0.5), 96_000), (np.tile(chord(0.5)[:1], (6, 1)), RATE)):
        page = Clip(samples, rate)._repr_html_()
        data = re.search(r'src="data:audio/ogg;base64,([A-Za-z0-9+/=]+)"', page).group(1)
        assert decode_audio(base64.b64decode(data))[1] == rate


def test_the_player_shows_facts_and_the_offline_notice_only_when_offline():
    online = Clip(chord(1.0), RATE, REQUEST, seed=3)._repr_html_()
    offline = Clip(chord(1.0), RATE, REQUEST, seed=3, offline=True)._repr_html_()
    assert OFFLINE_NOTICE in offline
    assert OFFLINE_NOTICE not in online
    for page in (online, offline):
        assert "1.00 s" in page
        assert "44.1 kHz stereo" in page
        assert "seed 3" in page
        assert "LUFS" in page


def test_the_prompt_is_escaped_in_the_player():
    request = GenerationRequest.build('<script>alert("x")</script> drums')
    page = Clip(chord(0.5), RATE, request)._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


# ----- facts -------------------------------------------------------------------------------------
def test_facts_of_a_sine_at_half_scale():
    t = np.arange(3 * RATE) / RATE
    tone = 0.5 * np.sin(2 * np.pi * 997 * t)
    facts = measure(np.stack([tone, tone]).astype(np.float32), RATE)
    assert facts.peak == pytest.approx(0.5, abs=1e-4)
    assert facts.peak_dbfs == pytest.approx(-6.02, abs=0.01)
    assert facts.rms_dbfs == pytest.approx(-9.03, abs=0.01)
    # BS.1770: a 997 Hz sine in both channels reads its level in dBFS as LUFS.
    assert facts.lufs == pytest.approx(-6.02, abs=0.1)
    assert facts.clipped_samples == 0
    assert not facts.clipping
    assert facts.duration == pytest.approx(3.0)


def test_clipping_counts_full_scale_samples():
    samples = np.full((1, RATE), 0.1, np.float32)
    samples[0, [10, 500, 9000]] = 1.0
    samples[0, 20_000] = -1.0
    facts = measure(samples, RATE)
    assert facts.clipped_samples == 4
    assert "clipping: 4 samples" in facts.summary()


def test_leading_and_trailing_silence():
    tone = 0.3 * np.cos(2 * np.pi * 440 * np.arange(RATE) / RATE)
    samples = np.concatenate([np.zeros(RATE // 2), tone, np.zeros(RATE // 4)])[None].astype(np.float32)
    facts = measure(samples, RATE)
    assert facts.leading_silence == pytest.approx(0.5, abs=0.001)
    assert facts.trailing_silence == pytest.approx(0.25, abs=0.002)
    assert "silence 0.50 s / 0.25 s" in facts.summary()


def test_silent_and_very_short_clips_have_no_loudness_but_a_summary():
    silent = measure(np.zeros((2, RATE), np.float32), RATE)
    assert silent.peak_dbfs == float("-inf")
    assert silent.leading_silence == pytest.approx(1.0)
    assert "n/a LUFS" in silent.summary()
    short = measure(chord(0.2), RATE)
    assert short.lufs is None
    assert "n/a LUFS" in short.summary()


# ----- decoding ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "options"), [("WAV", {}), ("FLAC", {}), ("OGG", {"subtype": "VORBIS"})])
def test_sniff_and_decode_real_formats(fmt, options):
    samples = chord(1.0)
    data = encoded(samples, fmt, **options)
    assert sniff_format(data) == fmt
    decoded, rate = decode_audio(data)
    assert rate == RATE
    assert decoded.shape == samples.shape
    assert decoded.dtype == np.float32
    if fmt != "OGG":  # lossless
        assert np.abs(decoded - samples).max() <= PCM16_STEP


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty body"),
        (b'{"error": {"message": "model not loaded"}}', "JSON instead of audio"),
        (b"<html><body>502 Bad Gateway</body></html>", "HTML instead of audio"),
        (b"RIFF\x10\x00\x00\x00AVI LIST", "data instead of audio"),
    ],
)
def test_bytes_that_are_not_audio_are_refused_with_a_clear_message(data, message):
    assert sniff_format(data) is None
    with pytest.raises(InvalidAudioResponse, match=message):
        decode_audio(data)
    with pytest.raises(InvalidAudioResponse):
        Clip.from_bytes(data)


@pytest.mark.parametrize(("fmt", "options"), [("WAV", {}), ("FLAC", {}), ("OGG", {"subtype": "VORBIS"})])
@pytest.mark.parametrize("keep", [0.5, 0.01])
def test_truncated_audio_is_refused(fmt, options, keep):
    data = encoded(chord(2.0), fmt, **options)
    cut = data[: int(len(data) * keep)]
    assert sniff_format(cut) == fmt  # it still looks like audio...
    with pytest.raises(InvalidAudioResponse, match=fmt):  # ...but does not pass as a whole clip
        decode_audio(cut)


def test_a_real_endpoint_response_becomes_a_clip_that_saves_and_reloads(offline_server, tmp_path):
    body = {"inputs": "a short test tone", "parameters": {"audio_end_in_s": 1.0, "num_inference_steps": 2}}
    response = httpx.post(
        f"{offline_server.url}{GENERATIONS_ROUTE}", json=body, headers=offline_server.headers(), timeout=120
    )
    assert response.status_code == 200, response.text
    request = GenerationRequest.from_body(body)
    seed = int(response.headers["X-Seed"])
    clip = Clip.from_bytes(response.content, request=request, seed=seed, offline=True)
    assert (clip.channels, clip.sample_rate) == (2, 44_100)
    assert clip.duration == pytest.approx(1.0, abs=0.01)
    loaded = Clip.load(clip.save(tmp_path / "tone.flac"))
    assert loaded.reproducible_request().to_body() == request.with_parameters(seed=seed).to_body()
