"""Variations: N takes in one pipeline call against N single calls, side by side in one run.

In this process, on the offline model (real diffusers pipeline, CPU): `AudioGenerator.variations`
(one call, ``num_waveforms_per_prompt=N``, seeds s..s+N-1) against `AudioGenerator.generate` called
N times with those seeds. Repeats alternate which side goes first, after one untimed warm-up each.
Then, in fp32 and bf16, the largest difference between take k of the batched call and the single
call with its seed (what the docstrings of `variations` state).

Run: python bench/variations.py [--count 4] [--seconds 10] [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()

    from flexaudio_helpers.params import GenerationRequest
    from flexaudio_helpers.serving.pipeline import load_generator

    request = GenerationRequest.build(
        "Rain on a tin roof", audio_end_in_s=arguments.seconds, num_inference_steps=arguments.steps, seed=7
    )
    generator = load_generator("offline", device="cpu")
    count = arguments.count
    print(f"{os.cpu_count()} cores; torch uses {torch.get_num_threads()} threads")

    def batched() -> float:
        started = time.perf_counter()
        generator.variations(request, count)
        return time.perf_counter() - started

    def singles() -> float:
        started = time.perf_counter()
        for take in range(count):
            generator.generate(request.with_parameters(seed=7 + take))
        return time.perf_counter() - started

    batched(), singles()  # warm-up
    one_call, separate = [], []
    for repeat in range(arguments.repeats):
        for side in (batched, singles) if repeat % 2 == 0 else (singles, batched):
            (one_call if side is batched else separate).append(side())
    one, many = statistics.median(one_call), statistics.median(separate)
    print(
        f"{count} variations of a {arguments.seconds:g} s clip, {arguments.steps} steps, "
        f"{arguments.repeats} repeats (median seconds)"
    )
    print(f"  one pipeline call (variations)   {one:7.2f}   runs {[round(t, 2) for t in one_call]}")
    print(f"  {count} single calls (generate)     {many:7.2f}   runs {[round(t, 2) for t in separate]}")
    print(f"  ratio single calls / one call    {many / one:7.2f}")

    print("take k of one call vs a single call with its seed (2 takes, 1 s, 2 steps):")
    small = request.with_parameters(audio_end_in_s=1.0, num_inference_steps=2)
    for dtype in ("fp32", "bf16"):
        low = load_generator("offline", device="cpu", dtype=dtype) if dtype != "fp32" else generator
        takes = low.variations(small, 2)
        gaps = [
            float(np.abs(take.samples - low.generate(small.with_parameters(seed=take.seed)).samples).max())
            for take in takes
        ]
        print(f"  {dtype}: max abs difference per take {gaps}  (bit-equal: {max(gaps) == 0.0})")


if __name__ == "__main__":
    main()
