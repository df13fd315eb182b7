"""Analysis speed: `analyze()` on 47.55 s of 44.1 kHz stereo vs the same numbers the plain librosa way.

The clip is the model's whole window: a chord with a kick drum at 128 bpm and a little noise,
different in each channel. "librosa way" asks librosa and pyloudnorm for each number with their
defaults (each function computes its own spectrogram; tempo from librosa's frame-by-frame
tempogram). Both ways are timed warm (after one untimed run of each, interleaved, median), and
ours once more in a fresh process (imports and numba's first compilation included).

Run: python bench/analysis_speed.py [--repeats 5]   (goal: ours <= 1.0 s warm)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np

SECONDS = 1024 * 2048 / 44_100  # 47.5545 s
RATE = 44_100


def synth() -> np.ndarray:
    t = np.arange(int(SECONDS * RATE)) / RATE
    chord = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((220.0, 277.18, 329.63)))
    beat = (t % (60 / 128)) < 0.08
    kick = beat * np.sin(2 * np.pi * 60 * t) * np.exp(-30 * (t % (60 / 128)))
    noise = np.random.default_rng(0).standard_normal((2, t.size)) * 0.02
    return (0.15 * chord + 0.6 * kick + noise).astype(np.float32)


def ours(samples: np.ndarray) -> float | None:
    from flexaudio_helpers.analysis import analyze

    return analyze((samples, RATE)).tempo_bpm


def librosa_way(samples: np.ndarray) -> float:
    import librosa
    import pyloudnorm

    mono = librosa.to_mono(samples)
    pyloudnorm.Meter(RATE).integrated_loudness(samples.T.astype(np.float64))
    tempo, _ = librosa.beat.beat_track(y=mono, sr=RATE)
    np.median(librosa.feature.spectral_centroid(y=mono, sr=RATE))
    np.median(librosa.feature.spectral_rolloff(y=mono, sr=RATE, roll_percent=0.85))
    np.median(librosa.feature.spectral_flatness(y=mono))
    librosa.onset.onset_detect(y=mono, sr=RATE)
    return float(np.atleast_1d(tempo)[0])


FRESH = """
import time, sys
sys.path.insert(0, "bench")
from analysis_speed import synth
samples = synth()
start = time.perf_counter()
from flexaudio_helpers.analysis import analyze
analyze((samples, 44100))
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    samples = synth()
    ways = {"ours": ours, "librosa": librosa_way}
    times: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}  # less disturbed by other work
    tempos = {name: way(samples) for name, way in ways.items()}  # untimed: imports, numba, caches
    for _ in range(options.repeats):
        for name, way in ways.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            way(samples)
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
    fresh = float(
        subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, check=True).stdout
    )
    print(
        f"{SECONDS:.2f} s of {RATE} Hz stereo -> loudness, tempo, beats, centroid, roll-off, flatness, onsets"
    )
    for name in ways:
        tempo = "no clear beat" if tempos[name] is None else f"{tempos[name]:.1f} bpm"
        print(
            f"{name:8} warm median {statistics.median(times[name]):.3f} s,"
            f" min {min(times[name]):.3f} s, CPU median {statistics.median(cpu[name]):.3f} s ({tempo})"
        )
    ratio = statistics.median(times["librosa"]) / statistics.median(times["ours"])
    print(
        f"ours is {ratio:.1f}x faster warm (goal: ours <= 1.0 s);"
        f" fresh process, imports included: {fresh:.2f} s"
    )


if __name__ == "__main__":
    main()
