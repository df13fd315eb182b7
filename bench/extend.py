"""Extending past the 47.55 s window: compute and memory side by side, and seam quality on a GPU.

Default (CPU, offline model, this process), printed side by side in one run:
- seconds of compute per minute of audio: an extension (`longer.extend`, each window keeping
  `KEEP_SECONDS` of the one before) against independent whole windows (`generate`);
- peak resident memory against the piece's length (1, 3 and 10 minutes), each in a fresh process
  (VmHWM, glibc's mmap threshold fixed), beside one plain window: the extension writes windows
  as they finish, so this should be flat.

``--gpu`` (a real model, e.g. ``--model stabilityai/stable-audio-open-1.0`` with HF_TOKEN): seam
quality for several K: spectral flux (the rise of the magnitude spectrum from one STFT frame to
the next) within 0.1 s of each join, against the mean flux over the whole piece. A ratio near 1
means the joins are no rougher than the music; ``--model offline`` runs the same code on noise.

Run: python bench/extend.py [--steps 4] [--lengths 1 3 10]
     python bench/extend.py --gpu --model stabilityai/stable-audio-open-1.0 --steps 100 [--keeps 2 5 10 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE = 44_100
PROMPT = "Slow ambient pads with a soft piano melody, 90 bpm"


def _peak_mib() -> float:
    """This process's peak resident memory: VmHWM (``ru_maxrss`` would start from the parent's
    peak, which Linux carries across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise OSError("no VmHWM in /proc/self/status: Linux only")


def _child(minutes: float, steps: int) -> None:
    """In a fresh process: load, then one plain window (minutes 0) or an extension; print peaks."""
    from flexaudio_helpers.longer import extend
    from flexaudio_helpers.params import GenerationRequest
    from flexaudio_helpers.serving.pipeline import load_generator

    generator = load_generator("offline", device="cpu")
    loaded = _peak_mib()
    started = time.perf_counter()
    if minutes == 0:
        generator.generate(GenerationRequest.build(PROMPT, num_inference_steps=steps, seed=1))
    else:
        source = (np.random.default_rng(0).standard_normal((2, 5 * RATE)) * 0.05).astype(np.float32)
        with tempfile.TemporaryDirectory() as folder:
            extend(
                generator,
                (source, RATE),
                to=minutes * 60,
                prompts=PROMPT,
                out=Path(folder) / "x.wav",
                progress=lambda *args: None,
                num_inference_steps=steps,
                seed=1,
            )
    print(json.dumps({"loaded": loaded, "peak": _peak_mib(), "seconds": time.perf_counter() - started}))


def _measure(minutes: float, steps: int) -> dict:
    command = [sys.executable, __file__, "--child", str(minutes), "--steps", str(steps)]
    # A fixed mmap threshold: glibc then returns each large buffer to the system when it is freed,
    # so the peak is what the code holds at once, not how the heap happened to fragment (with
    # glibc's moving threshold the same 1-minute run peaked anywhere from +454 to +818 MiB).
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu(arguments: argparse.Namespace) -> None:
    from flexaudio_helpers.longer import KEEP_SECONDS, extend
    from flexaudio_helpers.params import MAX_AUDIO_SECONDS, GenerationRequest
    from flexaudio_helpers.serving.pipeline import load_generator

    generator = load_generator("offline", device="cpu")
    steps, windows = arguments.steps, 3
    request = GenerationRequest.build(PROMPT, num_inference_steps=steps, seed=1)
    source = generator.generate(request.with_parameters(audio_end_in_s=10.0))  # also the warm-up
    to = 10.0 + windows * (MAX_AUDIO_SECONDS - KEEP_SECONDS)

    def independent() -> float:
        started = time.perf_counter()
        for window in range(windows):
            generator.generate(request.with_parameters(seed=window))
        return (time.perf_counter() - started) / (windows * MAX_AUDIO_SECONDS / 60)

    def extension() -> float:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            extend(
                generator,
                (source.samples, RATE),
                to=to,
                prompts=PROMPT,
                out=Path(folder) / "x.wav",
                progress=lambda *args: None,
                num_inference_steps=steps,
                seed=1,
            )
            return (time.perf_counter() - started) / ((to - 10.0) / 60)

    runs: dict = {independent: [], extension: []}
    for repeat in range(arguments.repeats):  # alternating which goes first
        for side in (independent, extension) if repeat % 2 == 0 else (extension, independent):
            runs[side].append(side())
    apart, chained = statistics.median(runs[independent]), statistics.median(runs[extension])
    print(f"offline model, CPU, {steps} steps; K = {KEEP_SECONDS:g} s kept per window")
    print("seconds of compute per minute of new audio:")
    print(
        f"  independent windows ({windows} x 47.55 s)     {apart:7.1f}   runs {_rounded(runs[independent])}"
    )
    print(
        f"  extension ({windows} windows, to {to:.1f} s)     {chained:7.1f}   "
        f"runs {_rounded(runs[extension])}   ratio {chained / apart:.2f}"
    )
    one = _measure(0, steps)
    print("peak resident memory (MiB), each in a fresh process:")
    print(
        f"  one plain window            peak {one['peak']:7.0f}   "
        f"over the loaded model {one['peak'] - one['loaded']:6.0f}"
    )
    for minutes in arguments.lengths:
        run = _measure(minutes, steps)
        print(
            f"  extension to {minutes:4g} min       peak {run['peak']:7.0f}   over the loaded model "
            f"{run['peak'] - run['loaded']:6.0f}   ({run['seconds']:.0f} s)"
        )


def _rounded(values: list[float]) -> list[float]:
    return [round(value, 1) for value in values]


def _flux(samples: np.ndarray) -> np.ndarray:
    from flexaudio_helpers.spectra import power_spectrogram

    magnitude = np.sqrt(power_spectrogram(samples.mean(axis=0), n_fft=2048, hop_length=512))
    return np.maximum(magnitude[1:] - magnitude[:-1], 0).sum(axis=1)


def gpu(arguments: argparse.Namespace) -> None:
    from flexaudio_helpers.audio import Clip
    from flexaudio_helpers.longer import HOP, WINDOW_FRAMES, extend
    from flexaudio_helpers.params import GenerationRequest
    from flexaudio_helpers.serving.pipeline import load_generator

    generator = load_generator(arguments.model)
    steps = arguments.steps
    source = generator.generate(
        GenerationRequest.build(PROMPT, audio_end_in_s=20.0, num_inference_steps=steps, seed=1)
    )
    print(
        f"{arguments.model} on {generator.device}, {steps} steps, source 20 s, pieces of {arguments.to:g} s"
    )
    print(f"{'K (s)':>6} {'join flux / mean flux':>22} {'joins':>6} {'seconds':>8}")
    window = WINDOW_FRAMES * HOP
    for keep in arguments.keeps:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            path = extend(
                generator,
                (source.samples, RATE),
                to=arguments.to,
                prompts=PROMPT,
                keep_seconds=keep,
                out=Path(folder) / "x.flac",
                progress=lambda *args: None,
                num_inference_steps=steps,
                seed=2,
            )
            seconds = time.perf_counter() - started
            piece = Clip.load(path)
        kept = round(keep * RATE / HOP) * HOP
        joins = [source.samples.shape[1]]
        while joins[-1] + window - kept < piece.frames:
            joins.append(joins[-1] + window - kept)
        flux = _flux(piece.samples)
        near = [flux[max(0, (j - 4410) // 512) : (j + 4410) // 512].mean() for j in joins]
        print(f"{keep:>6g} {np.mean(near) / flux.mean():>22.2f} {len(joins):>6} {seconds:>8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--lengths", type=float, nargs="+", default=[1, 3, 10])
    parser.add_argument("--gpu", action="store_true", help="seam quality on a real model")
    parser.add_argument("--model", default="stabilityai/stable-audio-open-1.0")
    parser.add_argument("--keeps", type=float, nargs="+", default=[2, 5, 10, 20])
    parser.add_argument("--to", type=float, default=180.0)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child is not None:
        _child(arguments.child, arguments.steps)
    elif arguments.gpu:
        gpu(arguments)
    else:
        cpu(arguments)


if __name__ == "__main__":
    main()
