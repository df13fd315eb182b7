"""Notebook weight of one clip: our inline player vs `IPython.display.Audio`, in one run.

A 10 s, 44.1 kHz stereo clip (a synthesised chord with a little noise, and the offline
model's kind of output: white noise) is shown both ways; the bytes of the HTML each puts
into the notebook are compared. Issue 3's goal: <= 250 KB for ours (IPython: ~2.35 MB).
Ours embeds MP3 (issue 21: Safari plays no Ogg Vorbis); the base64 of the Ogg Vorbis it
embedded before (quality 0.7) is printed beside it.

Run: python bench/embed_size.py
"""

from __future__ import annotations

import base64
import time

import numpy as np
from IPython.display import Audio

from flexaudio_helpers.audio import Clip

RATE = 44_100
SECONDS = 10.0
GOAL_BYTES = 250_000


def chord() -> np.ndarray:
    t = np.arange(int(SECONDS * RATE)) / RATE
    notes = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((220.0, 277.18, 329.63, 440.0)))
    left = 0.25 * notes * (0.6 + 0.4 * np.sin(np.pi * t / 4.0))
    noise = np.random.default_rng(0).standard_normal((2, t.size)) * 0.02
    return (np.stack([left, 0.8 * np.roll(left, 300)]) + noise).astype(np.float32)


def white_noise() -> np.ndarray:
    return (np.random.default_rng(1).standard_normal((2, int(SECONDS * RATE))) * 0.2).astype(np.float32)


def main() -> None:
    print(f"{SECONDS:g} s of {RATE} Hz stereo, HTML bytes in the notebook")
    print(
        f"{'signal':12} {'ours (MP3)':>10} {'IPython Audio':>14} {'ratio':>7} {'ours ms':>8}"
        f" {'IPython ms':>11} {'OGG 0.7 base64':>15}"
    )
    for name, samples in (("chord+noise", chord()), ("white noise", white_noise())):
        started = time.perf_counter()
        clip = Clip(samples, RATE)
        ours = len(clip._repr_html_().encode())
        ours_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        theirs = len(Audio(samples, rate=RATE)._repr_html_().encode())
        theirs_ms = (time.perf_counter() - started) * 1000
        ogg = len(base64.b64encode(clip.encode("OGG", compression=0.7)))
        verdict = "ok" if ours <= GOAL_BYTES else "OVER GOAL"
        print(
            f"{name:12} {ours / 1000:8.1f}KB {theirs / 1000:12.1f}KB {theirs / ours:6.1f}x"
            f" {ours_ms:8.0f} {theirs_ms:11.0f} {ogg / 1000:13.1f}KB  ({verdict}: <= {GOAL_BYTES // 1000} KB)"
        )


if __name__ == "__main__":
    main()
