"""Plots: numbers that agree with librosa, axes in real units, shared colour scales, no leaks."""

from __future__ import annotations

import io

import librosa
import matplotlib.pyplot as plt
import numpy as np
import pytest
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.plots import (
    TOP_DB,
    describe,
    draw_spectrogram,
    draw_waveform,
    plot_clip,
    plot_comparison,
    plot_spectrogram,
    plot_waveform,
)
from flexaudio_helpers.spectra import (
    hz_to_mel,
    mel_filterbank,
    mel_spectrogram,
    mel_to_hz,
    waveform_envelope,
)

RATE = 44_100


def tones(seconds: float, rate: int = RATE, channels: int = 2, level: float = 0.3) -> np.ndarray:
    """A few partials plus noise, a different mix per channel."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    lanes = [
        level * (np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * (1500 + 500 * c) * t))
        + 0.01 * rng.standard_normal(t.size)
        for c in range(channels)
    ]
    return np.stack(lanes).astype(np.float32)


def axes_named(figure: Figure, prefix: str) -> list:
    return [ax for ax in figure.axes if ax.get_label().startswith(prefix)]


def make_clip(prompt: str, *, seed: int, level: float = 0.3, **parameters) -> Clip:
    request = GenerationRequest.build(prompt, **parameters)
    return Clip(tones(1.0, level=level), RATE, request, seed=seed)


# ----- computing agrees with librosa -------------------------------------------------------
@pytest.mark.parametrize(
    ("rate", "n_fft", "n_mels"), [(44_100, 2048, 128), (22_050, 1024, 64), (16_000, 512, 40)]
)
def test_mel_filterbank_is_librosas(rate, n_fft, n_mels):
    ours = mel_filterbank(rate, n_fft, n_mels)
    theirs = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-8)
    assert mel_filterbank(rate, n_fft, n_mels) is ours  # cached


def test_mel_scale_is_librosas_slaney_scale():
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 22_050.0])
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-9)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("rate", "hop"), [(44_100, 512), (22_050, 256)])
def test_mel_spectrogram_matches_librosa_in_db(rate, hop):
    samples = tones(2.0, rate)
    ours = mel_spectrogram(samples, rate, hop_length=hop)
    power = librosa.feature.melspectrogram(y=librosa.to_mono(samples), sr=rate, hop_length=hop)
    theirs = librosa.power_to_db(power, ref=1.0, top_db=None)
    assert ours.db.shape == theirs.shape
    visible = theirs > theirs.max() - TOP_DB  # what the colour scale shows
    assert np.abs(ours.db - theirs)[visible].max() < 0.05
    np.testing.assert_allclose(ours.times, librosa.times_like(theirs, sr=rate, hop_length=hop))
    assert ours.frequencies.max() <= rate / 2
    assert ours.duration == pytest.approx(2.0)


def test_a_clip_shorter_than_one_fft_window_still_has_a_spectrogram():
    spectrogram = mel_spectrogram(tones(0.01), RATE)
    assert spectrogram.db.shape[0] == 128
    assert spectrogram.db.shape[1] >= 1
    assert np.isfinite(spectrogram.db).all()


def test_waveform_envelope_keeps_every_peak():
    samples = np.zeros((2, 100_003), np.float32)
    samples[0, 12_345] = 0.9  # single-sample spikes that plain decimation would drop
    samples[1, 100_002] = -0.7  # in the short last column
    envelope = waveform_envelope(samples, 1000, width=500)
    assert envelope.low.shape == envelope.high.shape == (2, envelope.times.size)
    assert 490 <= envelope.times.size <= 500  # at most one column per pixel
    assert envelope.high[0].max() == pytest.approx(0.9)
    assert envelope.low[1].min() == pytest.approx(-0.7)
    assert envelope.low[1][-1] == pytest.approx(-0.7)
    assert envelope.duration == pytest.approx(100.003)
    assert envelope.times[0] > 0 and envelope.times[-1] <= envelope.duration
    assert np.all(np.diff(envelope.times) > 0)


def test_waveform_envelope_of_a_short_clip_keeps_all_samples():
    samples = np.linspace(-1, 1, 300, dtype=np.float32)[None]
    envelope = waveform_envelope(samples, 100, width=1000)
    np.testing.assert_array_equal(envelope.low[0], samples[0])
    np.testing.assert_array_equal(envelope.high[0], samples[0])


# ----- axes in real units ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rate", "seconds", "channels"), [(44_100, 47.5545, 2), (22_050, 3.3, 1), (16_000, 1.0, 2)]
)
def test_plot_clip_axes_show_the_real_duration_rate_and_channels(rate, seconds, channels):
    samples = tones(seconds, rate, channels)
    figure = plot_clip((samples, rate))
    duration = samples.shape[1] / rate

    lanes = axes_named(figure, "waveform")
    assert len(lanes) == channels
    for lane in lanes:
        assert lane.get_xlim() == pytest.approx((0.0, duration))
    (spectrogram,) = axes_named(figure, "spectrogram")
    assert spectrogram.get_xlim() == pytest.approx((0.0, duration))
    (image,) = spectrogram.get_images()
    left, right, _, _ = image.get_extent()
    assert left <= 0.0 and right >= duration  # the image covers the whole clip
    top_hz = float(mel_to_hz(spectrogram.get_ylim()[1]))
    assert top_hz <= rate / 2 * (1 + 1e-12)  # Nyquist, up to the mel round trip's rounding
    assert top_hz > 0.9 * rate / 2  # and reaches up near Nyquist
    tick_hz = mel_to_hz(spectrogram.get_yticks())
    assert tick_hz.max() <= rate / 2
    assert f"{rate} Hz, hop 512" in spectrogram.get_xlabel()
    assert len(axes_named(figure, "colorbar")) == 1


@pytest.mark.parametrize(("level", "label"), [(10 ** (-31 / 20), "peak -31.0 dBFS"), (0.9, "peak -0.9 dBFS")])
def test_the_waveform_axis_is_scaled_to_the_clips_peak_which_it_names(level, label):
    samples = tones(1.0, level=1.0)
    samples *= level / np.abs(samples).max()
    figure = plot_clip((samples, RATE))
    lanes = axes_named(figure, "waveform")
    for lane in lanes:
        assert lane.get_ylim() == pytest.approx((-1.05 * level, 1.05 * level), rel=1e-3)
    notes = [text.get_text() for text in lanes[0].texts if text.get_label() == "peak"]
    assert [note.replace("\n", " ") for note in notes] == [label]
    silent = plot_waveform((np.zeros((1, 100), np.float32), RATE))
    assert axes_named(silent, "waveform")[0].get_ylim() == (-1.05, 1.05)
    assert "silent" in axes_named(silent, "waveform")[0].texts[0].get_text()


def test_waveform_and_spectrogram_figures_alone():
    samples = tones(2.0)
    waveform = plot_waveform((samples, RATE))
    assert [ax.get_ylabel() for ax in axes_named(waveform, "waveform")] == ["left", "right"]
    assert waveform.axes[-1].get_xlabel() == "time (s)"
    spectrogram = plot_spectrogram((samples, RATE), hop_length=256)
    (ax,) = axes_named(spectrogram, "spectrogram")
    assert ax.get_xlim() == pytest.approx((0.0, 2.0))
    assert "hop 256" in ax.get_xlabel()


def test_the_drawers_draw_on_the_callers_axes_and_return_what_they_drew():
    """librosa.display's shape: compute once, draw onto any axes, get the artist back."""
    samples = tones(1.0)
    figure, (left, right, spectrogram_ax, colour_ax) = plt.subplots(4, 1)
    try:
        areas = draw_waveform([left, right], waveform_envelope(samples, RATE))
        image = draw_spectrogram(spectrogram_ax, mel_spectrogram(samples, RATE), cax=colour_ax)
        assert [area.axes for area in areas] == [left, right]
        assert left.get_ylabel() == "left" and right.get_xlabel() == "time (s)"
        assert image.axes is spectrogram_ax and image.get_clim()[1] - image.get_clim()[0] == TOP_DB
        assert colour_ax.get_ylabel() == "dB"
    finally:
        plt.close(figure)


def test_any_object_with_samples_and_a_rate_plots_like_a_clip():
    class Recording:  # not a Clip: the plots only need the two fields of `plots.AudioLike`
        def __init__(self) -> None:
            self.samples, self.sample_rate = tones(0.5), RATE

    figure = plot_waveform(Recording())
    assert [ax.get_ylabel() for ax in axes_named(figure, "waveform")] == ["left", "right"]
    with pytest.raises(TypeError, match="expected a Clip"):
        plot_waveform("rain.wav")


def test_a_clip_is_titled_by_its_parameters_and_plots_itself():
    clip = make_clip(
        "Relaxing piano music with soft ambient sounds, calm and peaceful",
        seed=42,
        guidance_scale=7.0,
        num_inference_steps=200,
    )
    title = describe(clip)
    assert "Relaxing piano music" in title
    assert "peaceful" not in title  # shortened
    assert "guidance 7" in title
    assert "200 steps" in title
    assert "seed 42" in title
    figure = plot_clip(clip)
    assert isinstance(figure, Figure)
    assert figure.get_suptitle() == title
    assert plot_clip(clip, title="mine").get_suptitle() == "mine"
    assert describe(Clip(tones(0.5), RATE)) == ""


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="transpose"):
        plot_clip((tones(1.0).T, RATE))
    with pytest.raises(TypeError, match="Clip or a"):
        plot_clip("clip.wav")


# ----- comparison grid -------------------------------------------------------------------------------
def test_comparison_grid_shares_one_colour_scale_and_titles_from_parameters():
    clips = [
        make_clip("quiet rain", seed=1, level=0.01, guidance_scale=3.0),
        make_clip("loud drums", seed=2, level=0.5, guidance_scale=7.0),
        make_clip("middle strings", seed=3, level=0.1, guidance_scale=12.0, num_inference_steps=50),
    ]
    figure = plot_comparison(clips)
    panels = axes_named(figure, "spectrogram")
    assert len(panels) == 3
    limits = {panel.get_images()[0].get_clim() for panel in panels}
    assert len(limits) == 1  # the same vmin/vmax everywhere
    (vmin, vmax) = limits.pop()
    loudest = max(mel_spectrogram(c.samples, c.sample_rate).db.max() for c in clips)
    assert vmax == pytest.approx(loudest)
    assert vmax - vmin == pytest.approx(TOP_DB)
    titles = [panel.get_title() for panel in panels]
    assert "quiet rain" in titles[0] and "guidance 3" in titles[0] and "seed 1" in titles[0]
    assert "50 steps" in titles[2] and "guidance 12" in titles[2]
    assert len(axes_named(figure, "colorbar")) == 1


def test_offline_clips_say_on_the_picture_that_they_are_noise():
    real = make_clip("rain", seed=1)
    offline = Clip(tones(1.0), RATE, real.request, seed=1, offline=True)

    def notes(figure: Figure) -> list[str]:
        return [text.get_text() for text in figure.texts if "noise" in text.get_text().lower()]

    assert notes(plot_clip(real)) == []
    assert notes(plot_comparison([real, real])) == []
    for figure in (
        plot_clip(offline),
        plot_waveform(offline),
        plot_spectrogram(offline),
        plot_comparison([real, offline]),
    ):
        assert notes(figure) == ["OFFLINE MODEL: THIS IS NOISE FROM RANDOM WEIGHTS, NOT MUSIC"]


def test_comparison_grid_shape_follows_the_number_of_clips():
    def shape_of(figure: Figure) -> tuple[int, int]:
        spans = [ax.get_subplotspec() for ax in axes_named(figure, "spectrogram")]
        return max(s.rowspan.stop for s in spans), max(s.colspan.stop for s in spans)

    def shape(count: int) -> tuple[int, int]:
        return shape_of(plot_comparison([(tones(0.3), RATE)] * count))

    assert [shape(n) for n in (1, 2, 3, 4, 5)] == [(1, 1), (2, 1), (3, 1), (2, 2), (3, 2)]
    assert shape_of(plot_comparison([(tones(0.3), RATE)] * 3, columns=3)) == (1, 3)


def test_comparison_titles_given_and_checked():
    clips = [(tones(1.0), RATE), (tones(1.0, level=0.1), RATE)]
    figure = plot_comparison(clips, titles=["A", "B"])
    assert [ax.get_title() for ax in axes_named(figure, "spectrogram")] == ["A", "B"]
    assert [ax.get_title() for ax in axes_named(plot_comparison(clips), "spectrogram")] == [
        "clip 1",
        "clip 2",
    ]
    with pytest.raises(ValueError, match="2 clips"):
        plot_comparison(clips, titles=["only one"])
    with pytest.raises(ValueError, match="at least one"):
        plot_comparison([])


# ----- figures: no leaks, and they show in Jupyter ------------------------------------------------------
def test_plots_in_a_loop_leave_no_pyplot_figures():
    before = plt.get_fignums()
    clip = make_clip("loop", seed=1)
    for _ in range(3):
        plot_clip(clip)
        plot_waveform(clip)
        plot_spectrogram(clip)
        plot_comparison([clip, clip])
    assert plt.get_fignums() == before


def test_a_figure_renders_to_png_and_shows_in_jupyter_without_pyplot():
    figure = plot_clip((tones(3.0), RATE))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    # IPython registers a PNG printer for Figure only once pyplot's inline backend is on;
    # our figures carry their own, so a bare IPython formatter must produce a PNG.
    data, _ = DisplayFormatter().format(figure)
    assert data["image/png"].startswith(b"\x89PNG")
    assert data["image/png"] == figure._repr_png_()
