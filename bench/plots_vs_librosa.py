"""Plot speed: our `plot_clip` vs the librosa.display way, side by side in one run.

The clip is issue 3's case: 47.55 s of 44.1 kHz stereo (a synthesised chord with noise).
Every way draws the same thing (one waveform lane per channel above a mel spectrogram in dB
with a colour bar) on a figure of the same size and dpi, and renders it to PNG in memory:

- ours: `plot_clip` as it is, with `spectra`'s hand-written STFT and mel filters;
- librosa numerics: the same `plot_clip`, its mel spectrogram computed by ``librosa.stft`` and a
  cached ``librosa.filters.mel`` (what `spectra` would be if it leaned on librosa; issue 19);
- baseline (with ``--baseline DIR``): the `plot_clip` of another checkout's flexaudio_helpers,
  e.g. ``git worktree add /tmp/base main``, to compare a change side by side;
- librosa.display: ``waveshow`` and ``specshow``.

The STFT power and mel bands alone (no drawing) are also timed both ways.

- warm: both ways interleaved in one process, after one untimed run of each; median. Also
  in CPU seconds of this process (`time.process_time`), which other work on a shared machine
  disturbs far less than the wall clock (with 4 sessions on 2 cores, wall time is mostly waiting).
- fresh: a new `python -c` process per run (import + compute + draw + PNG), timed inside
  from before the first import, and from outside (the whole process, interpreter start
  included); both leave out the seconds spent synthesising the test clip.

Run: python bench/plots_vs_librosa.py [--repeats 7] [--fresh 3] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # pyplot for the librosa way; no window

SECONDS = 1024 * 2048 / 44_100  # 47.5545 s, the model's whole window
SAMPLE_RATE = 44_100
FIGSIZE = (10.0, 5.4)  # our plot_clip's size for a stereo clip without a title
DPI = 100

SYNTH = f"""
import numpy as np
def synth():
    rate = {SAMPLE_RATE}
    t = np.arange(int({SECONDS} * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((220.0, 277.18, 329.63, 440.0)))
    envelope = 0.5 + 0.5 * np.abs(np.sin(np.pi * t / 2.0))
    noise = np.random.default_rng(0).standard_normal((2, t.size)) * 0.03
    return (0.2 * chord * envelope + noise).astype(np.float32)
"""

OURS = """
import io
from flexaudio_helpers.plots import plot_clip
def render(samples, rate):
    buffer = io.BytesIO()
    plot_clip((samples, rate)).savefig(buffer, format="png")
    return buffer.getvalue()
"""

LIBROSA_NUMERICS = """
import functools, io
import librosa, numpy as np
from flexaudio_helpers import plots, spectra
@functools.lru_cache(maxsize=16)
def mel_filters(rate, n_fft, n_mels):
    return librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels)
def mel_power(mono, rate, n_mels=128, hop_length=512, n_fft=2048):
    stft = librosa.stft(mono, n_fft=n_fft, hop_length=hop_length, pad_mode="constant")
    return mel_filters(rate, n_fft, n_mels) @ (stft.real**2 + stft.imag**2)
def mel_spectrogram(samples, rate, *, n_mels=128, hop_length=512, n_fft=2048):
    power = mel_power(samples.mean(axis=0), rate, n_mels, hop_length, n_fft)
    mel_axis = np.linspace(0.0, float(librosa.hz_to_mel(rate / 2)), n_mels + 2)
    return spectra.MelSpectrogram(
        db=10.0 * np.log10(np.maximum(power, spectra.AMIN)),
        times=librosa.times_like(power, sr=rate, hop_length=hop_length),
        frequencies=librosa.mel_to_hz(mel_axis[1:-1]),
        sample_rate=rate, hop_length=hop_length, duration=samples.shape[1] / rate,
        mel_edges=(float(mel_axis[0]), float(mel_axis[-1])),
    )
def render(samples, rate):
    plots.mel_spectrogram = mel_spectrogram  # plot_clip finds it in its module
    try:
        buffer = io.BytesIO()
        plots.plot_clip((samples, rate)).savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plots.mel_spectrogram = spectra.mel_spectrogram
"""

BASELINE = """
import importlib.util, io, sys
def _baseline(folder):
    package = folder + "/flexaudio_helpers"
    spec = importlib.util.spec_from_file_location(
        "baseline_helpers", package + "/__init__.py", submodule_search_locations=[package]
    )
    module = sys.modules["baseline_helpers"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return importlib.import_module("baseline_helpers.plots")
_plots = _baseline({folder!r})
def render(samples, rate):
    buffer = io.BytesIO()
    _plots.plot_clip((samples, rate)).savefig(buffer, format="png")
    return buffer.getvalue()
"""

LIBROSA = f"""
import io
import librosa, librosa.display, matplotlib.pyplot as plt
def render(samples, rate):
    figure, axes = plt.subplots(3, 1, figsize={FIGSIZE}, dpi={DPI}, sharex=True,
                                height_ratios=[0.9, 0.9, 2.6])
    for ax, channel in zip(axes[:2], samples):
        librosa.display.waveshow(channel, sr=rate, ax=ax)
    mel = librosa.feature.melspectrogram(y=librosa.to_mono(samples), sr=rate)
    image = librosa.display.specshow(librosa.power_to_db(mel, ref=1.0), sr=rate, x_axis="time",
                                     y_axis="mel", ax=axes[2])
    figure.colorbar(image, ax=axes, format="%+2.0f dB")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
"""

FRESH = """
import time
from pathlib import Path
start = time.perf_counter()
{synth}
made = time.perf_counter(); samples = synth(); synth_seconds = time.perf_counter() - made
{way}
png = render(samples, {rate})
assert png[:4] == b"\\x89PNG"
print(time.perf_counter() - start - synth_seconds, synth_seconds)
"""


def load(source: str) -> dict:
    namespace: dict = {}
    exec(source, namespace)  # the same source text the fresh processes run
    return namespace


def fresh_seconds(way: str) -> tuple[float, float]:
    """(inside: import + compute + draw + PNG; outside: the whole process), less the synthesis."""
    code = FRESH.format(synth=SYNTH, way=way, rate=SAMPLE_RATE)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    inside, synth_seconds = map(float, result.stdout.split())
    return inside, time.perf_counter() - started - synth_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="warm runs of each way (interleaved)")
    parser.add_argument("--fresh", type=int, default=3, help="fresh processes of each way (interleaved)")
    parser.add_argument("--baseline", help="a checkout whose flexaudio_helpers to compare with ours")
    options = parser.parse_args()

    samples = load(SYNTH)["synth"]()
    sources = {"ours": OURS, "librosa numerics": LIBROSA_NUMERICS}
    if options.baseline:
        sources["baseline"] = BASELINE.format(folder=str(Path(options.baseline).resolve()))
    sources["librosa.display"] = LIBROSA
    ways = {name: load(source)["render"] for name, source in sources.items()}
    warm: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    for render in ways.values():
        render(samples, SAMPLE_RATE)  # untimed: imports, caches, FFT plans
    for _ in range(options.repeats):
        for name, render in ways.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            render(samples, SAMPLE_RATE)
            warm[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)

    numerics = numbers_alone(samples, load(LIBROSA_NUMERICS)["mel_power"], options.repeats)
    fresh: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(options.fresh):
        for name, source in sources.items():
            fresh[name].append(fresh_seconds(source))

    print(f"{SECONDS:.2f} s of {SAMPLE_RATE} Hz stereo -> waveform lanes + mel spectrogram -> PNG")
    print(
        f"{'':16} {'warm median':>12} {'warm min':>9} {'warm CPU':>9} {'fresh (inside)':>15}"
        f" {'fresh (process)':>16}"
    )
    for name in ways:
        inside = statistics.median(f[0] for f in fresh[name])
        outside = statistics.median(f[1] for f in fresh[name])
        print(
            f"{name:16} {statistics.median(warm[name]):11.3f}s {min(warm[name]):8.3f}s"
            f" {statistics.median(cpu[name]):8.3f}s {inside:14.3f}s {outside:15.3f}s"
        )
    for name in ways:
        if name == "ours":
            continue
        ratio = statistics.median(warm[name]) / statistics.median(warm["ours"])
        cpu_ratio = statistics.median(cpu[name]) / statistics.median(cpu["ours"])
        fresh_ratio = statistics.median(f[0] for f in fresh[name]) / statistics.median(
            f[0] for f in fresh["ours"]
        )
        print(f"{name} / ours: warm {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU; fresh {fresh_ratio:.2f}x")
    print("(goals: ours <= 0.15 s warm and >= 6x faster than librosa.display, <= 1.0 s fresh)")
    ours, theirs = (statistics.median(numerics[name]) for name in ("ours", "librosa"))
    print(
        f"STFT power + mel bands alone, warm CPU: ours {ours:.4f} s, librosa.stft + cached"
        f" librosa.filters.mel {theirs:.4f} s ({theirs / ours:.2f}x)"
    )


def numbers_alone(samples, librosa_mel_power, repeats: int) -> dict[str, list[float]]:
    """CPU seconds of the numbers a plot draws and the analysis measures: STFT power, mel bands."""
    from flexaudio_helpers.spectra import mel_power, power_spectrogram

    mono = samples.mean(axis=0)
    ways = {
        "ours": lambda: mel_power(power_spectrogram(mono), SAMPLE_RATE),
        "librosa": lambda: librosa_mel_power(mono, SAMPLE_RATE),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():
        way()
    for _ in range(repeats):
        for name, way in ways.items():
            started = time.process_time()
            way()
            times[name].append(time.process_time() - started)
    return times


if __name__ == "__main__":
    main()
