"""Plot speed: our `plot_clip` vs the librosa.display way, side by side in one run.

The clip is issue 3's case: 47.55 s of 44.1 kHz stereo (a synthesised chord with noise).
Both ways draw the same thing (one waveform lane per channel above a mel spectrogram in dB
with a colour bar) on a figure of the same size and dpi, and render it to PNG in memory.

- warm: both ways interleaved in one process, after one untimed run of each; median. Also
  in CPU seconds of this process (`time.process_time`), which other work on a shared machine
  disturbs far less than the wall clock (with 4 sessions on 2 cores, wall time is mostly waiting).
- fresh: a new `python -c` process per run (import + compute + draw + PNG), timed inside
  from before the first import, and from outside (the whole process, interpreter start
  included); both leave out the seconds spent synthesising the test clip.

Run: python bench/plots_vs_librosa.py [--repeats 7] [--fresh 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

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
    options = parser.parse_args()

    samples = load(SYNTH)["synth"]()
    ways = {"ours": load(OURS)["render"], "librosa": load(LIBROSA)["render"]}
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

    fresh: dict[str, list[tuple[float, float]]] = {"ours": [], "librosa": []}
    for _ in range(options.fresh):
        fresh["ours"].append(fresh_seconds(OURS))
        fresh["librosa"].append(fresh_seconds(LIBROSA))

    print(f"{SECONDS:.2f} s of {SAMPLE_RATE} Hz stereo -> waveform lanes + mel spectrogram -> PNG")
    print(
        f"{'':10} {'warm median':>12} {'warm min':>9} {'warm CPU':>9} {'fresh (inside)':>15}"
        f" {'fresh (process)':>16}"
    )
    for name in ways:
        inside = statistics.median(f[0] for f in fresh[name])
        outside = statistics.median(f[1] for f in fresh[name])
        print(
            f"{name:10} {statistics.median(warm[name]):11.3f}s {min(warm[name]):8.3f}s"
            f" {statistics.median(cpu[name]):8.3f}s {inside:14.3f}s {outside:15.3f}s"
        )
    ratio = statistics.median(warm["librosa"]) / statistics.median(warm["ours"])
    fresh_ratio = statistics.median(f[0] for f in fresh["librosa"]) / statistics.median(
        f[0] for f in fresh["ours"]
    )
    cpu_ratio = statistics.median(cpu["librosa"]) / statistics.median(cpu["ours"])
    print(f"warm speed-up: {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU (goal >= 6x, ours <= 0.15 s)")
    print(f"fresh speed-up: {fresh_ratio:.1f}x (goal: ours <= 1.0 s)")


if __name__ == "__main__":
    main()
