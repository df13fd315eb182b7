"""The explorer's memory over a long session (issue 22): RSS after 10, 40 and 100 full-length takes.

100 takes of 47.55 s, 44.1 kHz stereo (the model's longest clip; synthetic noise, so no model
runs) go through `Session.add`, as each Generate or sweep clip does, and the process's resident
memory is printed after 10, 40 and 100 of them. Then one of the oldest takes is asked for its
samples again (as playing, comparing, plotting or exporting it does) and the whole session is
exported. Run it on two checkouts to compare them (the same script runs on both):

    cd /work/main && python bench/explorer_memory.py     # before
    cd <this checkout> && python bench/explorer_memory.py

Linux or macOS (RSS from psutil).
"""

from __future__ import annotations

import gc
import resource
import sys
import tempfile
import time

import numpy as np
import psutil

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.explorer.session import Session
from flexaudio_helpers.params import GenerationRequest

RATE = 44_100
SECONDS = 47.55
TAKES = 100
REPORT_AFTER = (10, 40, 100)
MIB = 2**20


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / MIB


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (MIB if sys.platform == "darwin" else 1024)


def take_clip(seed: int) -> Clip:
    """A clip as the endpoint would give it: 47.55 s of stereo noise, its request and seed."""
    samples = np.random.default_rng(seed).standard_normal((2, round(SECONDS * RATE)), dtype=np.float32)
    samples *= 0.1
    request = GenerationRequest.from_body(
        {"inputs": f"take {seed}", "parameters": {"audio_end_in_s": SECONDS, "seed": seed}}
    )
    return Clip(samples, RATE, request, seed, {"request": 1.0}, offline=True)


def main() -> None:
    gc.collect()
    print(f"{TAKES} takes of {SECONDS} s, {RATE} Hz stereo through Session.add")
    print(f"{'takes':>6} {'RSS MiB':>8} {'peak MiB':>9} {'s per add':>10}")
    print(f"{0:>6} {rss_mib():>8.0f} {peak_rss_mib():>9.0f}")
    session = Session()
    adding = 0.0
    for number in range(1, TAKES + 1):
        clip = take_clip(number)
        started = time.perf_counter()
        session.add(clip)
        adding += time.perf_counter() - started
        del clip
        if number in REPORT_AFTER:
            gc.collect()
            print(f"{number:>6} {rss_mib():>8.0f} {peak_rss_mib():>9.0f} {adding / number:>10.3f}")

    started = time.perf_counter()
    oldest = session.get(1).clip
    assert oldest.seed == 1 and oldest.duration > SECONDS - 0.01
    print(f"take #1's samples again: {time.perf_counter() - started:.3f} s")
    del oldest
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        session.export(folder)
        print(f"export of {TAKES} takes: {time.perf_counter() - started:.1f} s")
    gc.collect()
    print(f"after both: RSS {rss_mib():.0f} MiB, peak {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
