"""Plots that draw measurements: beats, the centroid curve, and a sweep's metric charts."""

from __future__ import annotations

import io

import librosa
import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from flexaudio_helpers.analysis import analyze
from flexaudio_helpers.audio import Clip
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.plots import (
    draw_beats,
    plot_clip,
    plot_spectrogram,
    plot_sweep,
    sweep_values,
)
from flexaudio_helpers.spectra import hz_to_mel

RATE = 44_100


def clicks(bpm: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    times = np.arange(0.3, seconds - 0.2, 60.0 / bpm)
    mono = 0.5 * librosa.clicks(times=times, sr=RATE, length=int(seconds * RATE), click_duration=0.05)
    mono += 0.001 * np.random.default_rng(0).standard_normal(mono.size)
    return np.stack([mono, mono]).astype(np.float32), times


def noise(seconds: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal((2, int(seconds * RATE)))).astype(np.float32)


def axis(figure, label):
    return next(ax for ax in figure.axes if ax.get_label() == label)


def test_beats_are_drawn_where_the_clicks_are_on_every_lane():
    samples, times = clicks(128.0, 8.0)
    figure = plot_clip((samples, RATE), beats=True)
    for label in ("waveform left", "waveform right", "spectrogram"):
        (beats,) = [c for c in axis(figure, label).collections if c.get_label() == "beats"]
        drawn = np.array([segment[0][0] for segment in beats.get_segments()])
        assert len(drawn) >= 0.8 * len(times)
        assert np.abs(drawn[:, None] - times[None, :]).min(axis=1).max() <= 0.03
    notes = [text.get_text() for text in axis(figure, "waveform left").texts]
    assert any("bpm" in note and "confidence" in note for note in notes)


def test_noise_gets_no_beat_ticks_and_says_so():
    figure = plot_clip((noise(5.0), RATE), beats=True)
    (beats,) = [c for c in axis(figure, "spectrogram").collections if c.get_label() == "beats"]
    assert len(beats.get_segments()) == 0
    assert any("no clear beat" in text.get_text() for text in axis(figure, "waveform left").texts)


def test_draw_beats_takes_an_axis_and_returns_what_it_drew():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    ax.set_xlim(0, 4)
    drawn = draw_beats(ax, [0.5, 1.0, 1.5], color="red")
    assert [segment[0][0] for segment in drawn.get_segments()] == [0.5, 1.0, 1.5]
    assert ax.get_xlim() == (0, 4)


def test_the_centroid_curve_follows_the_brightness():
    white = noise(3.0)
    dark = sosfilt(butter(8, 1000, fs=RATE, output="sos"), white, axis=1).astype(np.float32)
    lines = {}
    for name, samples in (("white", white), ("dark", dark)):
        figure = plot_spectrogram((samples, RATE), centroid=True)
        (line,) = [ln for ln in axis(figure, "spectrogram").lines if ln.get_label() == "centroid"]
        lines[name] = np.nanmedian(line.get_ydata())
    # On the mel axis, as the spectrogram is drawn: white noise's centroid is far above 1 kHz's.
    assert lines["dark"] < hz_to_mel(1200) < hz_to_mel(5000) < lines["white"]
    figure = plot_clip((white, RATE), centroid=True)
    assert any(ln.get_label() == "centroid" for ln in axis(figure, "spectrogram").lines)


def sweep_clips(values, parameter="guidance_scale", offline=False):
    """Noise that gets louder with the swept value: the loudness chart must rise."""
    base = GenerationRequest.build("Rain on a tin roof", audio_end_in_s=3.0, seed=1)
    return [
        Clip(
            noise(3.0, level=0.01 * (i + 1), seed=i),
            RATE,
            base.with_parameters(**{parameter: value}),
            offline=offline,
        )
        for i, value in enumerate(values)
    ]


def test_sweep_charts_each_metric_against_the_swept_value():
    clips = sweep_clips([7.0, 1.0, 4.0])
    figure = plot_sweep(clips)
    charts = [ax for ax in figure.axes if ax.get_label().startswith("metric ")]
    assert [ax.get_label() for ax in charts] == [
        "metric loudness_lufs",
        "metric centroid_hz",
        "metric flatness",
    ]
    (line,) = charts[0].lines
    # x in order of guidance; y the measured loudness of the clip with that guidance.
    assert list(line.get_xdata()) == [1.0, 4.0, 7.0]
    expected = [analyze(clips[i]).loudness_lufs for i in (1, 2, 0)]
    assert list(line.get_ydata()) == pytest.approx(expected)
    assert charts[0].get_xlabel() == "guidance_scale"
    assert len([ax for ax in figure.axes if ax.get_label() == "spectrogram"]) == 3
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue()[:4] == b"\x89PNG"


def test_seeds_are_categories_and_other_metrics_can_be_chosen():
    clips = sweep_clips([42, 7, 123], parameter="seed")
    assert sweep_values(clips) == ("seed", [42, 7, 123])
    figure = plot_sweep(clips, metrics=["tempo_bpm", "stereo_width"])
    tempo = axis(figure, "metric tempo_bpm")
    assert [t.get_text() for t in tempo.get_xticklabels()] == ["42", "7", "123"]
    assert np.isnan(tempo.lines[0].get_ydata()).all()  # noise: no clear beat, no number
    assert any("not measurable" in text.get_text() for text in tempo.texts)


def test_sweep_input_is_checked():
    clips = sweep_clips([1.0, 1.0])
    with pytest.raises(ValueError, match="cannot tell which parameter"):
        plot_sweep(clips)
    with pytest.raises(ValueError, match="unknown metrics"):
        plot_sweep(clips, values=[1, 2], metrics=["loudness"])
    with pytest.raises(ValueError, match="2 values for 1 clips"):
        plot_sweep(clips[:1], values=[1, 2])


def test_an_offline_sweep_says_on_the_picture_that_it_is_noise():
    figure = plot_sweep(sweep_clips([1.0, 7.0], offline=True))
    assert any("NOISE" in text.get_text() for text in figure.texts)


def test_differences_too_small_to_hear_look_flat():
    # The same noise level at each value: loudness differs by hundredths of a LU.
    base = GenerationRequest.build("Rain on a tin roof", audio_end_in_s=3.0, seed=1)
    clips = [
        Clip(noise(3.0, seed=i), RATE, base.with_parameters(guidance_scale=g)) for i, g in enumerate((1, 5))
    ]
    chart = axis(plot_sweep(clips), "metric loudness_lufs")
    low, high = chart.get_ylim()
    assert high - low >= 2.0
    assert chart.yaxis.get_offset_text().get_text() == ""
