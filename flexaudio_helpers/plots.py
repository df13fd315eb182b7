"""Waveforms, mel spectrograms and comparison grids of clips.

Computing is apart from drawing, as in librosa: `waveform_envelope` and `mel_spectrogram`
return arrays with their axes; the `plot_*` functions draw them and return a
`matplotlib.figure.Figure`. Figures are built without pyplot, so none pile up in loops and
nothing needs closing; in Jupyter a returned figure shows as a PNG.

Drawers that take the caller's ``ax`` and return what they drew, as librosa.display's do:
`draw_waveform` (channel lanes), `draw_spectrogram` (a mel image), `draw_beats` (beat ticks),
`draw_centroid` (the brightness over time on a spectrogram) and `draw_sweep_metric` (a
measurement against a swept parameter, under `plot_sweep`'s grid).
The measurements come from `flexaudio_helpers.analysis`.

Speed (issue 3's goal: 47.55 s of stereo to PNG in <= 0.15 s warm, <= 1 s in a fresh
process, against librosa.display's 0.9 s / 4.7 s) comes from drawing a min/max envelope of
one value pair per pixel column instead of 2 million points, one framed float32 FFT, a cached
mel filterbank, and an image (`imshow`) instead of a mesh (`pcolormesh`).
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, MultipleLocator

# The dynamic range shown by the colour scale, as librosa.power_to_db's top_db.
TOP_DB = 80.0
AMIN = 1e-10  # power floor before the logarithm, as librosa's amin
# Frames per FFT call: 16 frames in and out (~260 KB) stay in a 2-core VM's cache; with 64 the
# FFTs ran up to 3x slower there (bench/plots_vs_librosa.py).
FFT_BLOCK_FRAMES = 16
FIGURE_WIDTH = 10.0  # inches
DPI = 100
ENVELOPE_WIDTH = 1000  # pixel columns of a waveform lane at FIGURE_WIDTH * DPI
COLORMAP = "magma"
OFFLINE_NOTE_HEIGHT = 0.3  # inches added below the plots for the offline model's notice
LANE_NAMES = {1: ("mono",), 2: ("left", "right")}
# Hz values worth a tick on a mel axis (the mel scale is linear below 1 kHz, log above).
MEL_TICKS_HZ = (0, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000)


class ClipFigure(Figure):
    """A plain matplotlib Figure that also shows itself as a PNG in Jupyter.

    IPython only registers its PNG formatter for `Figure` once pyplot is imported (the inline
    backend); a figure made without pyplot would otherwise show as ``<Figure size ...>``.
    """

    def savefig(self, fname: Any, **options: Any) -> None:
        """`Figure.savefig`, with PNGs compressed at zlib level 1 unless `pil_kwargs` says otherwise.

        A spectrogram is noisy: level 1 encodes it 4x faster than matplotlib's default (6) for
        about 13 % more bytes, and encoding was the largest part of a plot's time.
        """
        if options.get("pil_kwargs") is None:
            options["pil_kwargs"] = {"compress_level": 1}
        super().savefig(fname, **options)

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


@runtime_checkable
class AudioLike(Protocol):
    """What the plots need from a clip: `audio.Clip` is one; so is any object with these two.

    A clip may also carry ``request``, ``seed`` and ``offline``, which titles and notices use.
    """

    samples: np.ndarray  # (channels, frames)
    sample_rate: int


# ----- computing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WaveformEnvelope:
    """Per pixel column and channel, the lowest and highest sample: what a waveform plot shows."""

    times: np.ndarray  # (columns,) seconds at the centre of each column
    low: np.ndarray  # (channels, columns)
    high: np.ndarray  # (channels, columns)
    duration: float  # seconds of the whole clip


@dataclass(frozen=True)
class MelSpectrogram:
    """A mel power spectrogram in dB (re 1.0 power, like ``librosa.power_to_db(S, ref=1.0)``).

    `db` is (n_mels, frames); `times` are frame centres in seconds (``frame * hop / rate``,
    frames centred as librosa's ``center=True``); `frequencies` are the bands' centre
    frequencies in Hz; `mel_edges` the lowest and highest band edge on the mel scale.
    """

    db: np.ndarray
    times: np.ndarray
    frequencies: np.ndarray
    sample_rate: int
    hop_length: int
    duration: float
    mel_edges: tuple[float, float]


def waveform_envelope(samples: np.ndarray, sample_rate: int, width: int = ENVELOPE_WIDTH) -> WaveformEnvelope:
    """Min/max of the samples (channels, frames) in `width` equal columns (fewer for short clips)."""
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    channels, frames = samples.shape
    if frames == 0:
        empty = np.zeros((channels, 0), np.float32)
        return WaveformEnvelope(np.zeros(0), empty, empty, 0.0)
    block = -(-frames // max(1, width))  # ceil: every column holds `block` frames, the last fewer
    whole = frames // block * block
    columns = samples[:, :whole].reshape(channels, -1, block)
    low, high = columns.min(axis=2), columns.max(axis=2)
    if whole < frames:
        tail = samples[:, whole:]
        low = np.concatenate([low, tail.min(axis=1, keepdims=True)], axis=1)
        high = np.concatenate([high, tail.max(axis=1, keepdims=True)], axis=1)
    starts = np.arange(low.shape[1]) * block
    centres = (starts + np.minimum(starts + block, frames)) / 2
    return WaveformEnvelope(centres / sample_rate, low, high, frames / sample_rate)


def hz_to_mel(hz: Any) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear to 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    logarithmic = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, logarithmic, linear)


def mel_to_hz(mel: Any) -> np.ndarray:
    """The inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """The (n_mels, 1 + n_fft // 2) float32 filterbank of ``librosa.filters.mel`` (Slaney, 0 Hz to Nyquist).

    The same formula as librosa's (a test checks they agree), written out because importing
    ``librosa.filters`` pulls in scipy.signal and numba: about 1 s, the whole budget of a first plot.
    """
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    rising = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney norm: equal area per band
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # cached and shared
    return weights


@lru_cache(maxsize=16)
def _mel_bands(sample_rate: int, n_fft: int, n_mels: int) -> tuple[tuple[int, int, np.ndarray], ...]:
    """Per band of `mel_filterbank`, the bins where its weights are not zero: (first, end, weights)."""
    bands = []
    for weights in mel_filterbank(sample_rate, n_fft, n_mels):
        nonzero = np.flatnonzero(weights)
        low, high = (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 1)
        bands.append((low, high, weights[low:high]))
    return tuple(bands)


@lru_cache(maxsize=4)
def _hann(n_fft: int) -> np.ndarray:
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic, as scipy's get_window("hann")
    window.flags.writeable = False
    return window


def mel_spectrogram(
    samples: np.ndarray, sample_rate: int, *, n_mels: int = 128, hop_length: int = 512, n_fft: int = 2048
) -> MelSpectrogram:
    """The mel spectrogram of the channels' mix, as ``librosa.feature.melspectrogram`` then dB.

    Frames are centred with zero padding (librosa's ``center=True, pad_mode="constant"``),
    windowed with a periodic Hann window, power 2, Slaney mel bands from 0 Hz to Nyquist.
    """
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    mono = samples.mean(axis=0, dtype=np.float32) if samples.shape[0] > 1 else samples[0]
    padded = np.pad(mono, n_fft // 2)
    if padded.size < n_fft:
        padded = np.pad(padded, (0, n_fft - padded.size))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    window = _hann(n_fft)
    power = np.empty((len(frames), n_fft // 2 + 1), np.float32)
    # FFT in blocks of frames that stay in cache: about twice as fast as one call on all frames.
    for start in range(0, len(frames), FFT_BLOCK_FRAMES):
        block = slice(start, start + FFT_BLOCK_FRAMES)
        spectrum = np.fft.rfft(frames[block] * window, axis=1)  # float32 in, complex64 out
        np.square(spectrum.real, out=power[block])
        power[block] += np.square(spectrum.imag)
    mel_power = np.empty((n_mels, len(frames)), np.float32)
    # Each band covers a few neighbouring bins: 2,000 weights of the dense 131,000 are not zero.
    for band, (low, high, weights) in enumerate(_mel_bands(sample_rate, n_fft, n_mels)):
        np.matmul(power[:, low:high], weights, out=mel_power[band])
    db = 10.0 * np.log10(np.maximum(mel_power, AMIN))
    mel_axis = np.linspace(0.0, float(hz_to_mel(sample_rate / 2)), n_mels + 2)
    return MelSpectrogram(
        db=db,
        times=np.arange(db.shape[1]) * hop_length / sample_rate,
        frequencies=mel_to_hz(mel_axis[1:-1]),
        sample_rate=sample_rate,
        hop_length=hop_length,
        duration=samples.shape[1] / sample_rate,
        mel_edges=(float(mel_axis[0]), float(mel_axis[-1])),
    )


# ----- drawing -----------------------------------------------------------------------------
def _audio(clip: AudioLike | tuple[np.ndarray, int]) -> tuple[np.ndarray, int, AudioLike | None]:
    """(samples, sample_rate, clip or None) from a clip or a (samples, sample_rate) pair."""
    if isinstance(clip, AudioLike):
        return np.atleast_2d(clip.samples), int(clip.sample_rate), clip
    try:
        samples, sample_rate = clip
    except (TypeError, ValueError):
        raise TypeError(
            f"expected a Clip or a (samples, sample_rate) pair, got {type(clip).__name__}"
        ) from None
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if samples.shape[0] > samples.shape[1]:
        raise ValueError(
            f"samples must be (channels, frames), got shape {samples.shape} "
            "(soundfile gives (frames, channels): transpose it)"
        )
    return samples, int(sample_rate), None


def describe(clip: Any, *, prompt_chars: int = 40) -> str:
    """A short title from a clip's parameters: the prompt, guidance, steps and seed."""
    request = getattr(clip, "request", None)
    if request is None:
        return ""
    parts = [f"“{textwrap.shorten(request.inputs, prompt_chars, placeholder='…')}”"]
    parameters = request.parameters
    if parameters.guidance_scale is not None:
        parts.append(f"guidance {parameters.guidance_scale:g}")
    if parameters.num_inference_steps is not None:
        parts.append(f"{parameters.num_inference_steps} steps")
    seed = getattr(clip, "seed", None)
    if seed is None:
        seed = parameters.seed
    if seed is not None:
        parts.append(f"seed {seed}")
    return " · ".join(parts)


def draw_waveform(axes: Sequence[Any], envelope: WaveformEnvelope, *, time_axis: bool = True) -> list[Any]:
    """One lane per channel on the caller's `axes`; returns the filled areas, one per lane.

    Without `time_axis` no lane draws an x axis (one below shows time).
    """
    areas = []
    names = LANE_NAMES.get(len(axes), tuple(f"ch {i + 1}" for i in range(len(axes))))
    for ax, low, high, name in zip(axes, envelope.low, envelope.high, names, strict=True):
        areas.append(
            ax.fill_between(envelope.times, low, high, color="#1f77b4", linewidth=0.6, edgecolor="#1f77b4")
        )
        ax.axhline(0.0, color="0.6", linewidth=0.5)
        ax.set_xlim(0.0, envelope.duration)
        ax.set_ylim(-1.05, 1.05)
        ax.set_yticks([-1, 0, 1])
        ax.set_ylabel(name)
        ax.set_label(f"waveform {name}")  # lets callers and tests find the lanes
        ax.xaxis.set_visible(False)  # also spares drawing its ticks, a large part of a draw
    if time_axis:
        axes[-1].xaxis.set_visible(True)
        axes[-1].set_xlabel("time (s)")
    return areas


def draw_spectrogram(
    ax: Any, spectrogram: MelSpectrogram, *, cax: Any = None, vmax: float | None = None
) -> Any:
    """An image on the caller's mel axis `ax`, labelled in Hz; returns the image.

    Its colour scale is vmax-80..vmax dB (vmax: the loudest band unless given); with `cax`, a
    colour bar is drawn there.
    """
    vmax = float(spectrogram.db.max()) if vmax is None else vmax
    hop_seconds = spectrogram.hop_length / spectrogram.sample_rate
    # Average groups of frames down to about one per pixel column: what antialiasing would
    # do, at a fifth of the cost of matplotlib resampling 4,000 frames on every draw.
    pixels = ax.get_position().width * ax.figure.get_figwidth() * ax.figure.dpi
    db, group = _pool_columns(spectrogram.db, max(1, int(pixels)))
    image = ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap=COLORMAP,
        vmin=vmax - TOP_DB,
        vmax=vmax,
        interpolation="nearest",
        # Frame i is centred on i * hop seconds; bands are equally spaced on the mel scale.
        extent=(
            -hop_seconds / 2,
            (db.shape[1] * group - 0.5) * hop_seconds,
            *spectrogram.mel_edges,
        ),
    )
    ax.set_xlim(0.0, spectrogram.duration)
    ax.set_ylim(*spectrogram.mel_edges)
    # About five time ticks and a colour tick every 20 dB: each tick is several artists and a
    # text to lay out and render on every draw; axis decorations are a third of a warm plot.
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    nyquist = spectrogram.sample_rate / 2
    ticks = [hz for hz in MEL_TICKS_HZ if hz <= nyquist]
    ax.yaxis.set_major_locator(FixedLocator(hz_to_mel(ticks)))
    ax.yaxis.set_major_formatter(FuncFormatter(_hz_label))
    ax.set_ylabel("frequency (Hz, mel scale)")
    ax.set_xlabel(f"time (s) · {spectrogram.sample_rate} Hz, hop {spectrogram.hop_length}")
    ax.set_label("spectrogram")
    if cax is not None:
        cax.set_label("colorbar")
        colorbar = ax.figure.colorbar(image, cax=cax, ticks=MultipleLocator(20))
        colorbar.set_label("dB")
    return image


def _pool_columns(values: np.ndarray, columns: int) -> tuple[np.ndarray, int]:
    """Mean of equal groups of columns so that at most `columns` remain; (pooled, group size)."""
    group = -(-values.shape[1] // columns)
    if group == 1:
        return values, 1
    padding = -values.shape[1] % group  # repeat the last frame to fill the last group
    padded = np.pad(values, ((0, 0), (0, padding)), mode="edge")
    return padded.reshape(values.shape[0], -1, group).mean(axis=2), group


def _hz_label(mel: float, _position: Any = None) -> str:
    hz = float(mel_to_hz(mel))
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:.0f}"


def _figure(
    height: float,
    rows: int,
    columns: int,
    *,
    titled: bool,
    sources: Sequence[Any] = (),
    **grid_options: Any,
) -> tuple[Figure, Any]:
    """A figure and its grid, with margins fixed in inches (constrained layout costs ~0.2 s a draw).

    When any of `sources` came from the offline model, a line below the plots says it is noise.
    """
    offline = any(getattr(source, "offline", False) for source in sources)
    note = OFFLINE_NOTE_HEIGHT if offline else 0.0
    height += note
    bottom = 0.5 + note
    figure = ClipFigure(figsize=(FIGURE_WIDTH, height), dpi=DPI)
    top = 0.45 if titled else 0.15
    grid = figure.add_gridspec(
        rows,
        columns,
        left=0.8 / FIGURE_WIDTH,
        right=1 - 0.75 / FIGURE_WIDTH,
        bottom=bottom / height,
        top=1 - top / height,
        **grid_options,
    )
    if offline:
        # Imported here: `audio` pulls in pydantic (0.1-0.5 s), which plotting arrays never needs.
        from .audio import OFFLINE_FACT

        figure.text(0.1 / FIGURE_WIDTH, 0.08 / height, OFFLINE_FACT.upper(), fontsize=8, color="firebrick")
    return figure, grid


def plot_waveform(clip: Any, title: str | None = None) -> Figure:
    """The waveform, one lane per channel, time in seconds. Accepts a Clip or (samples, rate)."""
    samples, rate, source = _audio(clip)
    title = _title_text(title, source)
    channels = samples.shape[0]
    figure, grid = _figure(
        0.6 + 1.1 * channels, channels, 1, titled=bool(title), sources=[source], hspace=0.08
    )
    first = figure.add_subplot(grid[0, 0])
    lanes = [first] + [figure.add_subplot(grid[i, 0], sharex=first) for i in range(1, channels)]
    draw_waveform(lanes, waveform_envelope(samples, rate))
    _title(figure, title)
    return figure


def plot_spectrogram(
    clip: Any, title: str | None = None, *, centroid: bool = False, **mel_options: Any
) -> Figure:
    """The mel spectrogram in dB with a colour bar. Accepts a Clip or (samples, rate).

    `centroid=True` draws the spectral centroid (the brightness) over time on it.
    """
    samples, rate, source = _audio(clip)
    title = _title_text(title, source)
    figure, grid = _figure(
        3.2, 1, 2, titled=bool(title), sources=[source], width_ratios=[1, 0.02], wspace=0.02
    )
    spectrogram = mel_spectrogram(samples, rate, **mel_options)
    ax = figure.add_subplot(grid[0, 0])
    draw_spectrogram(ax, spectrogram, cax=figure.add_subplot(grid[0, 1]))
    if centroid:
        draw_centroid(ax, *_centroid_curve(clip))
    _title(figure, title)
    return figure


def plot_clip(
    clip: Any,
    title: str | None = None,
    *,
    beats: bool = False,
    centroid: bool = False,
    **mel_options: Any,
) -> Figure:
    """Waveform lanes above the mel spectrogram, sharing the time axis. Accepts a Clip or (samples, rate).

    `beats=True` marks the beats librosa's tracker finds (or says there is no clear beat);
    `centroid=True` draws the spectral centroid (the brightness) over the spectrogram.
    """
    samples, rate, source = _audio(clip)
    title = _title_text(title, source)
    channels = samples.shape[0]
    figure, grid = _figure(
        1.0 + 0.9 * channels + 2.6,
        channels + 1,
        2,
        titled=bool(title),
        sources=[source],
        height_ratios=[0.9] * channels + [2.6],
        width_ratios=[1, 0.02],
        hspace=0.08,
        wspace=0.02,
    )
    spectrogram_ax = figure.add_subplot(grid[channels, 0])
    lanes = [figure.add_subplot(grid[i, 0], sharex=spectrogram_ax) for i in range(channels)]
    draw_waveform(lanes, waveform_envelope(samples, rate), time_axis=False)
    spectrogram = mel_spectrogram(samples, rate, **mel_options)
    draw_spectrogram(spectrogram_ax, spectrogram, cax=figure.add_subplot(grid[channels, 1]))
    if beats:
        from .analysis import analyze  # imported on use: librosa takes a second to import

        analysis = analyze(clip)
        for ax in [*lanes, spectrogram_ax]:
            draw_beats(ax, analysis.beat_times_s)
        tempo = f"{analysis.tempo_bpm:.1f} bpm" if analysis.has_clear_beat else "no clear beat"
        _corner_note(lanes[0], f"{tempo} (beat confidence {analysis.beat_confidence:.2f})")
    if centroid:
        draw_centroid(spectrogram_ax, *_centroid_curve(clip))
    _title(figure, title)
    return figure


def draw_beats(ax: Any, beat_times: Sequence[float], *, color: str = "#2ca02c", **style: Any) -> Any:
    """Mark beat times (seconds) as thin vertical ticks across `ax`; returns the LineCollection."""
    lines = ax.vlines(
        list(beat_times),
        0.0,
        1.0,
        transform=ax.get_xaxis_transform(),
        colors=color,
        **{"linewidth": 0.8, "alpha": 0.8, **style},
    )
    lines.set_label("beats")
    return lines


def draw_centroid(ax: Any, times: np.ndarray, centroid_hz: np.ndarray, **style: Any) -> Any:
    """The spectral centroid (Hz) over time on a mel-scale spectrogram axis; returns the Line2D."""
    (line,) = ax.plot(
        times, hz_to_mel(centroid_hz), **{"color": "cyan", "linewidth": 1.0, "label": "centroid", **style}
    )
    ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return line


def _centroid_curve(clip: Any) -> tuple[np.ndarray, np.ndarray]:
    from .analysis import centroid_curve  # imported on use, as above

    return centroid_curve(clip)


def _corner_note(ax: Any, text: str) -> Any:
    return ax.text(
        0.005,
        0.95,
        text,
        transform=ax.transAxes,
        fontsize=8,
        va="top",
        ha="left",
        bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1.5},
    )


def plot_comparison(
    clips: Sequence[Any],
    titles: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    **mel_options: Any,
) -> Figure:
    """Mel spectrograms of several clips in a grid, on one shared colour scale, titled by their parameters.

    By default up to three clips are stacked at full width; more go two to a row.
    """
    audio, spectrograms, columns, rows = _grid_inputs(clips, titles, columns, mel_options)
    figure, grid = _figure(
        0.3 + 2.8 * rows,
        rows,
        columns + 1,
        titled=True,  # room for the first row's titles
        sources=[source for _, _, source in audio],
        width_ratios=[1] * columns + [0.03],
        hspace=0.5,
        wspace=0.2,
    )
    _draw_grid(figure, grid, audio, spectrograms, titles, columns)
    return figure


# What a sweep can chart, from `analysis.Analysis`: field -> (axis title, smallest y span shown).
# The span keeps differences too small to hear (0.001 LU) from filling a chart as if they mattered.
SWEEP_METRICS = {
    "loudness_lufs": ("loudness (LUFS)", 2.0),
    "centroid_hz": ("brightness: centroid (Hz)", 200.0),
    "flatness": ("noisiness: flatness", 0.05),
    "rolloff_hz": ("85 % roll-off (Hz)", 500.0),
    "tempo_bpm": ("tempo (bpm)", 6.0),
    "beat_confidence": ("beat confidence", 0.2),
    "onsets_per_s": ("onsets per second", 1.0),
    "stereo_width": ("stereo width", 0.1),
    "peak_dbfs": ("peak (dBFS)", 2.0),
}
DEFAULT_SWEEP_METRICS = ("loudness_lufs", "centroid_hz", "flatness")
SWEEP_PARAMETERS = ("guidance_scale", "num_inference_steps", "seed")
METRIC_ROW_HEIGHT = 1.9  # inches


def sweep_values(clips: Sequence[Any], parameter: str | None = None) -> tuple[str, list[Any]]:
    """(the swept parameter, its value per clip), read from the clips' requests.

    Without `parameter`, the one of guidance_scale, num_inference_steps and seed whose value
    differs between the clips.
    """

    def value(clip: Any, name: str) -> Any:
        if name == "seed" and getattr(clip, "seed", None) is not None:
            return clip.seed
        request = getattr(clip, "request", None)
        return getattr(request.parameters, name, None) if request is not None else None

    candidates = [parameter] if parameter else list(SWEEP_PARAMETERS)
    for name in candidates:
        values = [value(clip, name) for clip in clips]
        if parameter or len(set(values)) > 1:
            return name, values
    raise ValueError(
        "cannot tell which parameter was swept: the clips agree on guidance_scale, "
        "num_inference_steps and seed; pass parameter= and values="
    )


def plot_sweep(
    clips: Sequence[Any],
    parameter: str | None = None,
    *,
    values: Sequence[Any] | None = None,
    metrics: Sequence[str] = DEFAULT_SWEEP_METRICS,
    titles: Sequence[str] | None = None,
    columns: int | None = None,
    **mel_options: Any,
) -> Figure:
    """A sweep: the clips' spectrograms in a grid, and under it what the swept value did in numbers.

    One small line chart per metric (by default loudness, brightness and noisiness, see
    `SWEEP_METRICS`) against the swept parameter (read from the clips' requests unless `values`
    are given). Seeds have no order, so they are shown as categories.
    """
    if values is None:
        parameter, values = sweep_values(clips, parameter)
    elif len(values) != len(clips):
        raise ValueError(f"got {len(values)} values for {len(clips)} clips")
    unknown = [metric for metric in metrics if metric not in SWEEP_METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metrics {unknown}: choose from {', '.join(SWEEP_METRICS)}")
    from .analysis import analyze  # imported on use: librosa takes a second to import

    parameter = parameter or "value"
    if titles is None:
        titles = [f"{parameter}={value}" for value in values]
    audio, spectrograms, columns, rows = _grid_inputs(clips, titles, columns, mel_options)
    analyses = [analyze(source if source is not None else (samples, rate)) for samples, rate, source in audio]
    figure, grid = _figure(
        0.3 + 2.8 * rows + METRIC_ROW_HEIGHT,
        rows + 1,
        columns + 1,
        titled=True,
        sources=[source for _, _, source in audio],
        width_ratios=[1] * columns + [0.03],
        height_ratios=[2.8] * rows + [METRIC_ROW_HEIGHT - 0.5],
        hspace=0.55,
        wspace=0.2,
    )
    _draw_grid(figure, grid, audio, spectrograms, titles, columns)
    charts = grid[rows, :columns].subgridspec(1, len(metrics), wspace=0.35)
    for index, metric in enumerate(metrics):
        ax = figure.add_subplot(charts[0, index])
        measured = [getattr(analysis, metric) for analysis in analyses]
        title, span = SWEEP_METRICS[metric]
        draw_sweep_metric(ax, values, measured, label=title, parameter=parameter, min_span=span)
        ax.set_label(f"metric {metric}")
    return figure


def draw_sweep_metric(
    ax: Any,
    values: Sequence[Any],
    measured: Sequence[float | None],
    *,
    label: str,
    parameter: str,
    min_span: float = 0.0,
) -> Any:
    """One measurement against the swept values, as a line with markers; returns the Line2D.

    Numeric values (guidance, steps) go on a numeric axis in order; seeds, which have no order,
    are evenly spaced categories. Missing measurements (None, e.g. no clear beat) leave a gap.
    The y axis spans at least `min_span`, so that a change too small to matter looks flat.
    """
    y = np.array([np.nan if m is None else float(m) for m in measured])
    numeric = parameter != "seed" and all(isinstance(v, int | float) for v in values)
    if numeric:
        order = np.argsort(np.asarray(values, dtype=float))
        x = np.asarray(values, dtype=float)[order]
        y = y[order]
        if len(x) <= 8:
            ax.set_xticks(x, [f"{v:g}" for v in x], fontsize=7)
    else:
        x = np.arange(len(values))
        ax.set_xticks(x, [str(v) for v in values], fontsize=7, rotation=30 if len(values) > 4 else 0)
    (line,) = ax.plot(x, y, marker="o", markersize=4, linewidth=1.2, color="#d62728")
    ax.set_title(label, fontsize=8)
    ax.set_xlabel(parameter, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    finite = y[np.isfinite(y)]
    if finite.size == 0:
        ax.text(0.5, 0.5, "not measurable", transform=ax.transAxes, ha="center", va="center", fontsize=8)
    elif np.ptp(finite) < min_span:
        middle = (finite.max() + finite.min()) / 2
        ax.set_ylim(middle - min_span / 2, middle + min_span / 2)
    return line


def _grid_inputs(
    clips: Sequence[Any], titles: Sequence[str] | None, columns: int | None, mel_options: dict[str, Any]
) -> tuple[list[tuple[np.ndarray, int, Any]], list[MelSpectrogram], int, int]:
    """Checked (samples, rate, source) and spectrograms of the clips, and the grid's columns and rows."""
    if not clips:
        raise ValueError("plot_comparison needs at least one clip")
    if titles is not None and len(titles) != len(clips):
        raise ValueError(f"got {len(titles)} titles for {len(clips)} clips")
    audio = [_audio(clip) for clip in clips]
    spectrograms = [mel_spectrogram(samples, rate, **mel_options) for samples, rate, _ in audio]
    if columns is None:
        columns = 1 if len(clips) <= 3 else 2
    columns = max(1, min(columns, len(clips)))
    return audio, spectrograms, columns, -(-len(clips) // columns)


def _draw_grid(
    figure: Figure,
    grid: Any,
    audio: Sequence[tuple[np.ndarray, int, Any]],
    spectrograms: Sequence[MelSpectrogram],
    titles: Sequence[str] | None,
    columns: int,
) -> None:
    """The spectrograms on one colour scale (so louder really looks louder), one colour bar at the right."""
    vmax = max(float(s.db.max()) for s in spectrograms)
    rows = -(-len(spectrograms) // columns)
    image = None
    for index, (spectrogram, (_, _, source)) in enumerate(zip(spectrograms, audio, strict=True)):
        ax = figure.add_subplot(grid[index // columns, index % columns])
        image = draw_spectrogram(ax, spectrogram, vmax=vmax)
        label = titles[index] if titles is not None else describe(source, prompt_chars=24)
        ax.set_title(label or f"clip {index + 1}", fontsize=8)
        if index % columns:
            ax.set_ylabel("")
            ax.tick_params(labelleft=False)  # the first column's labels serve the row
        if index + columns < len(spectrograms):
            ax.set_xlabel("")
    colorbar = figure.colorbar(image, cax=figure.add_subplot(grid[:rows, columns], label="colorbar"))
    colorbar.set_label("dB")


def _title_text(title: str | None, source: Any) -> str:
    return title if title is not None else describe(source)


def _title(figure: Figure, title: str) -> None:
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 0.08 / figure.get_figheight(), va="top")
