"""Drawing clips: waveforms, mel spectrograms, comparison grids and sweeps.

Computing is apart from drawing, as in librosa: `spectra.waveform_envelope` and
`spectra.mel_spectrogram` return arrays with their axes; the `plot_*` functions draw them and
return a `matplotlib.figure.Figure`. Figures are built without pyplot, so none pile up in loops and
nothing needs closing; in Jupyter a returned figure shows as a PNG. The `draw_*` functions draw
onto the caller's ``ax`` and return what they drew, as librosa.display's do.

Speed (47.55 s of stereo to PNG in <= 0.15 s warm, against librosa.display's 0.9 s;
bench/plots_vs_librosa.py): a min/max envelope per pixel column instead of 2 million points,
`spectra`'s FFT and cached mel filterbank, and an image (`imshow`) instead of a mesh.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, MultipleLocator

from .params import SWEEPABLE
from .protocol import OFFLINE_NOTICE
from .spectra import (
    TOP_DB,
    AudioLike,
    MelSpectrogram,
    WaveformEnvelope,
    audio_arrays,
    hz_to_mel,
    mel_spectrogram,
    mel_to_hz,
    waveform_envelope,
)

FIGURE_WIDTH = 10.0  # inches
DPI = 100
COLORMAP = "magma"
OFFLINE_NOTE_HEIGHT = 0.3  # inches added below the plots for the offline model's notice
Audio = AudioLike | tuple[np.ndarray, int]  # a clip, or (samples (channels, frames), sample_rate)
LANE_NAMES = {1: ("mono",), 2: ("left", "right")}
# Hz values worth a tick on a mel axis (the mel scale is linear below 1 kHz, log above).
MEL_TICKS_HZ = (0, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000)


class ClipFigure(Figure):
    """A plain matplotlib Figure that also shows itself as a PNG in Jupyter.

    IPython only registers its PNG formatter for `Figure` once pyplot is imported (the inline
    backend); a figure made without pyplot would otherwise show as ``<Figure size ...>``.
    """

    def savefig(self, fname: Any, **options: Any) -> None:
        """`Figure.savefig`, PNGs at zlib level 1 unless `pil_kwargs` says otherwise: 4x faster to
        encode a noisy spectrogram than the default 6, for about 13 % more bytes."""
        if options.get("pil_kwargs") is None:
            options["pil_kwargs"] = {"compress_level": 1}
        super().savefig(fname, **options)

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


# ----- drawing -----------------------------------------------------------------------------
def describe(clip: AudioLike | None, *, prompt_chars: int = 40) -> str:
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

    All lanes share a vertical scale of ± the clip's peak, so a quiet clip (the offline model
    peaks near -34 dBFS) still shows its shape; the first lane says the peak in dBFS, so that
    its loudness stays readable. Without `time_axis` no lane draws an x axis (one below shows time).
    """
    areas = []
    names = LANE_NAMES.get(len(axes), tuple(f"ch {i + 1}" for i in range(len(axes))))
    peak = float(max(np.abs(envelope.low).max(initial=0.0), np.abs(envelope.high).max(initial=0.0)))
    scale = peak if peak > 0 else 1.0
    for ax, low, high, name in zip(axes, envelope.low, envelope.high, names, strict=True):
        areas.append(
            ax.fill_between(envelope.times, low, high, color="#1f77b4", linewidth=0.6, edgecolor="#1f77b4")
        )
        ax.axhline(0.0, color="0.6", linewidth=0.5)
        ax.set_xlim(0.0, envelope.duration)
        ax.set_ylim(-1.05 * scale, 1.05 * scale)
        ax.set_yticks([-scale, scale], [f"{-scale:.2g}", f"{scale:.2g}"])
        ax.set_ylabel(name)
        ax.set_label(f"waveform {name}")  # lets callers and tests find the lanes
        ax.xaxis.set_visible(False)  # also spares drawing its ticks, a large part of a draw
    level = f"peak\n{20 * np.log10(peak):.1f} dBFS" if peak > 0 else "silent"
    # In the right margin, where the waveform (which reaches the top of its lane) cannot hide it.
    axes[0].text(1.01, 1.0, level, transform=axes[0].transAxes, fontsize=8, va="top", label="peak")
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
        figure.text(0.1 / FIGURE_WIDTH, 0.08 / height, OFFLINE_NOTICE.upper(), fontsize=8, color="firebrick")
    return figure, grid


def plot_waveform(clip: Audio, title: str | None = None) -> Figure:
    """The waveform, one lane per channel, time in seconds. Accepts a Clip or (samples, rate)."""
    samples, rate, source = audio_arrays(clip)
    title = describe(source) if title is None else title
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
    clip: Audio, title: str | None = None, *, centroid: bool = False, **mel_options: Any
) -> Figure:
    """The mel spectrogram in dB with a colour bar. Accepts a Clip or (samples, rate).

    `centroid=True` draws the spectral centroid (the brightness) over time on it.
    """
    samples, rate, source = audio_arrays(clip)
    title = describe(source) if title is None else title
    figure, grid = _figure(
        3.2, 1, 2, titled=bool(title), sources=[source], width_ratios=[1, 0.02], wspace=0.02
    )
    spectrogram = mel_spectrogram(samples, rate, **mel_options)
    ax = figure.add_subplot(grid[0, 0])
    draw_spectrogram(ax, spectrogram, cax=figure.add_subplot(grid[0, 1]))
    if centroid:
        from .analysis import centroid_curve  # imported on use: librosa takes a second to import

        draw_centroid(ax, *centroid_curve(clip))
    _title(figure, title)
    return figure


def plot_clip(
    clip: Audio,
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
    samples, rate, source = audio_arrays(clip)
    title = describe(source) if title is None else title
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
        note = f"{tempo} (beat confidence {analysis.beat_confidence:.2f})"
        box = {"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1.5}
        lanes[0].text(0.005, 0.95, note, transform=lanes[0].transAxes, fontsize=8, va="top", bbox=box)
    if centroid:
        from .analysis import centroid_curve  # imported on use, as above

        draw_centroid(spectrogram_ax, *centroid_curve(clip))
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


def draw_centroid(ax: Any, times: np.ndarray, centroid_hz: np.ndarray) -> Any:
    """The spectral centroid (Hz) over time on a mel-scale spectrogram axis; returns the Line2D."""
    (line,) = ax.plot(times, hz_to_mel(centroid_hz), color="cyan", linewidth=1.0, label="centroid")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return line


def plot_comparison(
    clips: Sequence[Audio],
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

    candidates = [parameter] if parameter else list(SWEEPABLE)
    for name in candidates:
        values = [value(clip, name) for clip in clips]
        if parameter or len(set(values)) > 1:
            return name, values
    raise ValueError(
        "cannot tell which parameter was swept: the clips agree on guidance_scale, "
        "num_inference_steps and seed; pass parameter= and values="
    )


def plot_sweep(
    clips: Sequence[Audio],
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
    audio = [audio_arrays(clip) for clip in clips]
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


def _title(figure: Figure, title: str) -> None:
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 0.08 / figure.get_figheight(), va="top")
