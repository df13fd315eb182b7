"""Analysis: real signals with known answers, made here, measured by `flexaudio_helpers.analysis`."""

from __future__ import annotations

import json
import math

import librosa
import numpy as np
import pyloudnorm
import pytest
from scipy.signal import butter, sosfilt

from flexaudio_helpers.analysis import (
    CLEAR_BEAT,
    SIMILARITY_NOTE,
    Analysis,
    AnalysisError,
    analyze,
    check,
    compare,
    prompt_hints,
    similarity,
)
from flexaudio_helpers.audio import Clip
from flexaudio_helpers.cli import main
from flexaudio_helpers.params import GenerationRequest

RATE = 44_100


def click_track(bpm: float, seconds: float, rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """(stereo samples, click times): librosa's clicks every beat, with a little noise under them."""
    times = np.arange(0.5, seconds - 0.2, 60.0 / bpm)
    clicks = librosa.clicks(times=times, sr=rate, length=int(seconds * rate), click_duration=0.05)
    noise = 0.001 * np.random.default_rng(1).standard_normal(clicks.size)
    mono = (0.5 * clicks + noise).astype(np.float32)
    return np.stack([mono, mono]), times


def noise(seconds: float, channels: int = 2, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal((channels, int(seconds * RATE)))).astype(
        np.float32
    )


def sine(seconds: float, hz: float = 1000.0, amplitude: float = 0.5) -> np.ndarray:
    # A cosine starts on its crest, so the peak sample is exactly the amplitude.
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.cos(2 * np.pi * hz * t)).astype(np.float32)[None, :]


@pytest.mark.parametrize("bpm", [128.0, 90.0])
def test_click_track_tempo_and_beats(bpm):
    samples, clicks = click_track(bpm, 20.0)
    analysis = analyze((samples, RATE))
    assert analysis.tempo_bpm == pytest.approx(bpm, abs=2.0)
    assert analysis.beat_confidence >= CLEAR_BEAT
    beats = np.array(analysis.beat_times_s)
    assert len(beats) >= 0.8 * len(clicks)
    # Every beat falls on a click.
    distance = np.abs(beats[:, None] - clicks[None, :]).min(axis=1)
    assert distance.max() <= 0.030, distance


def test_pure_noise_has_no_clear_beat():
    for seed in range(3):
        analysis = analyze((noise(20.0, seed=seed), RATE))
        assert analysis.tempo_bpm is None, analysis.beat_confidence
        assert analysis.beat_confidence < CLEAR_BEAT
        assert analysis.beat_times_s == ()
        assert "no clear beat" in str(analysis)


def test_brightness_orders_white_and_low_passed_noise():
    white = noise(5.0, channels=1)
    low_passed = sosfilt(butter(8, 1000, fs=RATE, output="sos"), white).astype(np.float32)
    bright, dark = analyze((white, RATE)), analyze((low_passed, RATE))
    assert dark.centroid_hz < 1200 < 5000 < bright.centroid_hz
    assert dark.rolloff_hz < 1500 < 10_000 < bright.rolloff_hz
    assert bright.flatness > 0.3


def test_flatness_of_noise_is_far_above_a_sines():
    assert analyze((noise(3.0), RATE)).flatness > 100 * analyze((sine(3.0), RATE)).flatness


def test_loudness_and_peak_of_a_sine_at_a_known_level():
    samples = sine(5.0, amplitude=0.5)
    analysis = analyze((samples, RATE))
    reference = pyloudnorm.Meter(RATE).integrated_loudness(samples[0].astype(np.float64))
    assert analysis.loudness_lufs == pytest.approx(reference, abs=0.5)
    # BS.1770: a full-scale 1 kHz sine in one channel reads -3.01 LUFS; half of full scale, 6.02 dB less.
    assert analysis.loudness_lufs == pytest.approx(-3.01 - 6.02, abs=0.1)
    assert analysis.peak_dbfs == pytest.approx(20 * math.log10(0.5), abs=1e-6)
    assert analysis.clipped_fraction == 0.0


def test_loudness_gates_quiet_parts_as_pyloudnorm_does():
    # Stereo noise that steps from loud to quiet to near-silent: both gates come into play.
    levels = np.repeat([0.3, 0.02, 0.0003, 0.1], RATE * 2)[None, :]
    samples = (noise(8.0) * levels * 10).astype(np.float32)
    reference = pyloudnorm.Meter(RATE).integrated_loudness(samples.T.astype(np.float64))
    assert analyze((samples, RATE)).loudness_lufs == pytest.approx(reference, abs=0.05)
    assert analyze((np.zeros((2, RATE), np.float32), RATE)).loudness_lufs == -math.inf
    assert analyze((noise(0.3), RATE)).loudness_lufs is None  # shorter than one 400 ms block


def test_the_analysis_measures_a_clip_as_its_player_does():
    clip = Clip(noise(3.0), RATE)
    analysis, facts = analyze(clip), clip.facts
    assert (analysis.loudness_lufs, analysis.peak_dbfs) == (facts.lufs, facts.peak_dbfs)
    assert analysis.leading_silence_s == facts.leading_silence


def test_clipping_is_the_share_of_full_scale_samples():
    # A sine driven to twice full scale: |2 cos| >= 1 for two thirds of each period.
    samples = np.clip(sine(2.0, amplitude=2.0), -1.0, 1.0)
    assert analyze((samples, RATE)).clipped_fraction == pytest.approx(2 / 3, abs=0.01)
    assert analyze((sine(2.0, amplitude=0.9), RATE)).clipped_fraction == 0.0


def test_silence_padding_at_both_ends():
    pad = np.zeros((2, RATE // 2), np.float32)
    samples = np.concatenate([pad, noise(2.0), pad], axis=1)
    analysis = analyze((samples, RATE))
    assert analysis.leading_silence_s == pytest.approx(0.5, abs=0.05)
    assert analysis.trailing_silence_s == pytest.approx(0.5, abs=0.05)
    assert analysis.duration_s == pytest.approx(3.0)


def test_stereo_width():
    mono_noise = noise(2.0, channels=1)
    assert analyze((np.concatenate([mono_noise, mono_noise]), RATE)).stereo_width == 0.0
    assert analyze((mono_noise, RATE)).stereo_width == 0.0
    independent = analyze((noise(2.0, channels=2), RATE)).stereo_width
    assert 0.8 < independent < 1.25


@pytest.mark.parametrize(
    "samples, message",
    [
        (np.zeros((2, 0), np.float32), "empty"),
        (np.full((2, RATE), np.nan, np.float32), "NaN"),
    ],
)
def test_unusable_input_gets_a_clear_error(samples, message):
    with pytest.raises(AnalysisError, match=message):
        analyze((samples, RATE))


def test_a_transposed_array_is_refused_with_the_reason():
    with pytest.raises(AnalysisError, match="transpose"):
        analyze((noise(1.0).T, RATE))


def test_short_mono_and_silent_clips_get_well_defined_answers():
    short = analyze((noise(0.01, channels=1), RATE))  # 10 ms: no loudness gate, no beat
    assert short.loudness_lufs is None and short.tempo_bpm is None
    assert short.centroid_hz > 0 and short.channels == 1
    silent = analyze((np.zeros((2, 3 * RATE), np.float32), RATE))
    assert silent.centroid_hz is None and silent.flatness is None and silent.tempo_bpm is None
    assert silent.onsets_per_s == 0.0 and silent.stereo_width == 0.0
    assert silent.to_dict()["peak_dbfs"] is None  # -inf is not JSON
    json.dumps(silent.to_dict(), allow_nan=False)
    assert "silent" in str(silent)


def test_every_field_has_a_meaning_and_the_html_table_shows_them():
    analysis = analyze((noise(1.0), RATE))
    table = analysis._repr_html_()
    for _label, value, meaning in analysis.rows():
        assert meaning and value in table
    assert Analysis.meaning("tempo_bpm").startswith("beats per minute")


def test_prompt_hints_read_tempo_and_brightness():
    hints = prompt_hints("Upbeat electronic music, 128 bpm, crisp hi-hats", "distorted, muffled")
    assert [(h.kind, h.bpm, h.brightness, h.avoid) for h in hints] == [
        ("tempo", 128.0, None, False),
        ("brightness", None, "bright", False),
        ("brightness", None, "dark", True),
    ]
    assert prompt_hints("a dark drone, not bright")[1].asked == "not bright"
    assert prompt_hints("Rain on a tin roof") == []


def test_check_puts_the_asked_tempo_beside_the_measured_one():
    samples, _ = click_track(128.0, 15.0)
    request = GenerationRequest.build("a click track at 128 bpm", audio_end_in_s=15.0)
    result = check(Clip(samples, RATE, request))
    assert len(result.checks) == 1
    line = str(result)
    assert line.startswith("asked 128 bpm, measured 12") and line.endswith("✓")
    wrong = check(Clip(samples, RATE, GenerationRequest.build("drums at 100 bpm", audio_end_in_s=15.0)))
    assert str(wrong).endswith("✗")


def test_check_on_noise_says_no_clear_beat_and_offline_says_it_means_nothing():
    request = GenerationRequest.build("techno at 128 bpm, bright", negative_prompt="muffled")
    result = check(Clip(noise(5.0), RATE, request, offline=True))
    text = str(result)
    assert "asked 128 bpm, measured no clear beat" in text
    assert "asked not muffled" in text and "no beat and no meaning" in text
    assert {c.followed for c in result.checks} == {None} and "✓" not in text.splitlines()[0]


def test_offline_model_clips_analyse_in_code_and_through_the_cli(offline_server, tmp_path, capsys):
    from flexaudio_helpers.client import AudioClient

    # The seed tutorial's three example prompts (notebook 04), each with its negative prompt.
    examples = (
        ("Relaxing piano music with soft ambient sounds, calm and peaceful", None),
        (
            "Forest ambience with birds chirping and a gentle stream flowing",
            "distorted, low quality, muffled",
        ),
        ("Upbeat electronic music with synthesizers and energetic drums, 128 bpm", None),
    )
    with AudioClient(offline_server.url, offline_server.api_key) as client:
        for prompt, negative in examples:
            request = GenerationRequest.build(prompt, negative_prompt=negative, audio_end_in_s=4.0)
            clip = client.generate(request.with_parameters(num_inference_steps=2))
            analysis = analyze(clip)
            assert analysis.offline and analysis.channels == 2
            assert analysis.duration_s == pytest.approx(4.0, abs=0.1)
            assert "no meaning" in str(check(clip, analysis))
    # The same clip, saved, through the command line.
    path = clip.save(tmp_path / "electronic_beat.wav")
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no clear beat" in out and "no beat and no meaning" in out


def test_cli_analyze_reads_the_prompt_from_the_files_metadata(tmp_path, capsys):
    samples, _ = click_track(128.0, 12.0)
    request = GenerationRequest.build("a click track, 128 bpm, crisp", audio_end_in_s=12.0, seed=7)
    path = Clip(samples, RATE, request, seed=7).save(tmp_path / "clicks.wav")
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "'a click track, 128 bpm, crisp'" in out and "loudness" in out
    assert "asked 128 bpm, measured 12" in out and "bpm ✓" in out
    assert main(["analyze", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tempo_bpm"] == pytest.approx(128.0, abs=2.0)
    assert report["checks"][0] == {
        "asked": "128 bpm",
        "measured": report["checks"][0]["measured"],
        "followed": True,
    }
    assert report["checks"][1]["asked"] == "crisp"


@pytest.mark.parametrize("content", [b"", b"not audio at all"])
def test_cli_analyze_refuses_a_file_that_is_not_audio_in_one_line(tmp_path, capsys, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    assert main(["analyze", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("flexaudio: error: cannot read") and "\n" not in error


def test_compare_puts_clips_side_by_side():
    white = noise(2.0, channels=1)
    quiet = (white * 0.1).astype(np.float32)
    table = compare({"loud": (white, RATE), "quiet": (quiet, RATE)})
    (loudness,) = [values for label, values, _ in table.rows() if label == "loudness"]
    louder, softer = (float(value.split()[0]) for value in loudness)
    assert louder - softer == pytest.approx(20.0, abs=0.1)  # a tenth of the amplitude is 20 dB
    assert str(table).splitlines()[0].split() == ["loud", "quiet"]
    assert "<th style='text-align:right'>quiet</th>" in table._repr_html_()


def test_spectral_measures_are_librosas():
    # Noise under a chord, so that every measure has something to say.
    t = np.arange(3 * RATE) / RATE
    mono = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    mono += noise(3.0, channels=1, level=0.02)[0]
    analysis = analyze((mono[None, :], RATE))
    magnitude = np.abs(librosa.stft(mono, n_fft=2048, hop_length=512))
    expected = {
        "centroid_hz": librosa.feature.spectral_centroid(S=magnitude, sr=RATE),
        "rolloff_hz": librosa.feature.spectral_rolloff(S=magnitude, sr=RATE, roll_percent=0.85),
        "flatness": librosa.feature.spectral_flatness(S=magnitude),
    }
    for name, values in expected.items():
        assert getattr(analysis, name) == pytest.approx(float(np.median(values)), rel=0.01), name


MELODY_HZ = (220, 277, 330, 440, 330, 277, 220, 165)


def tune(seconds: float = 5.0) -> np.ndarray:
    """A stereo melody: the notes of `MELODY_HZ` one after another, each for an equal share of `seconds`."""
    frames = int(seconds * RATE)
    pitch = np.repeat(np.asarray(MELODY_HZ, dtype=np.float64), frames // len(MELODY_HZ) + 1)[:frames]
    mono = (0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / RATE)).astype(np.float32)
    return np.stack([mono, mono])


def test_similarity_is_one_for_the_same_sound_and_falls_as_noise_buries_it():
    melody = tune()
    assert similarity((melody, RATE), (melody, RATE)) == pytest.approx(1.0)
    assert similarity((melody, RATE), (0.25 * melody, RATE)) == pytest.approx(1.0, abs=1e-6)  # quieter
    low_passed = sosfilt(butter(8, 1000, fs=RATE, output="sos"), melody).astype(np.float32)
    assert similarity((melody, RATE), (low_passed, RATE)) > 0.95  # another EQ: the same changes
    # More noise over the melody, less alike: what a higher init noise level does.
    scores = [
        similarity((melody, RATE), (melody + noise(5.0, seed=1, level=level), RATE))
        for level in (0.001, 0.01, 0.1, 1.0)
    ]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.9 and scores[-1] < 0.6, scores
    # Unrelated noises score near 0, even of one colour (the average spectrum is set aside).
    assert abs(similarity((noise(5.0, seed=1), RATE), (noise(5.0, seed=2), RATE))) < 0.1
    dark = [sosfilt(butter(8, 1000, fs=RATE, output="sos"), noise(5.0, seed=seed)) for seed in (1, 2)]
    assert abs(similarity((dark[0], RATE), (dark[1], RATE))) < 0.1
    # A longer clip is compared over the shorter one's length (whose last frame is half padding).
    assert similarity((melody, RATE), (melody[:, : RATE * 2], RATE)) > 0.9


def test_similarity_is_a_float_that_says_when_it_means_nothing():
    melody = tune(2.0)
    made = Clip(melody, RATE)
    score = similarity(made, (melody, RATE))
    assert isinstance(score, float) and not score.offline and str(score) == "1.00"
    offline = similarity(Clip(melody, RATE, offline=True), made)
    assert offline.offline and f"{offline:.2f}" == "1.00"
    assert str(offline) == f"1.00 ({SIMILARITY_NOTE})" and "means nothing" in SIMILARITY_NOTE
    assert repr(offline) == "Similarity(1.000, offline=True)"
    with pytest.raises(AnalysisError, match="at 44100 Hz and 22050 Hz: resample one first"):
        similarity((melody, RATE), (melody, 22_050))
    with pytest.raises(AnalysisError, match="cannot compare a silent clip"):
        similarity((melody, RATE), (np.zeros_like(melody), RATE))
