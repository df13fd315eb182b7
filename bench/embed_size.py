"""Notebook weight and time of one clip: our inline player vs `IPython.display.Audio`, in one run.

A 10 s, 44.1 kHz stereo clip (a synthesised chord with a little noise, and the offline
model's kind of output: white noise) is shown both ways; the bytes of the HTML each puts
into the notebook are compared. Issue 3's goal: <= 250 KB for ours (IPython: ~2.35 MB).
Ours embeds MP3 (issue 21: Safari plays no Ogg Vorbis). Issue 27's goal: <= 150 ms to encode
10 s. Side by side, best of 5: our MP3 (LAME's fast mode, 128 kbit/s, through lameenc), the
MP3 it encoded before (libsndfile's variable bitrate at compression 0.5, through soundfile),
and the whole player (facts line included) against IPython's. The base64 of the Ogg Vorbis it
embedded before issue 21 (quality 0.7) is printed beside them.

Run: python bench/embed_size.py
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import soundfile as sf
from IPython.display import Audio

from flexaudio_helpers.audio import Clip

RATE = 44_100
SECONDS = 10.0
GOAL_BYTES = 250_000
GOAL_MS = 150


def chord() -> np.ndarray:
    t = np.arange(int(SECONDS * RATE)) / RATE
    notes = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((220.0, 277.18, 329.63, 440.0)))
    left = 0.25 * notes * (0.6 + 0.4 * np.sin(np.pi * t / 4.0))
    noise = np.random.default_rng(0).standard_normal((2, t.size)) * 0.02
    return (np.stack([left, 0.8 * np.roll(left, 300)]) + noise).astype(np.float32)


def white_noise() -> np.ndarray:
    return (np.random.default_rng(1).standard_normal((2, int(SECONDS * RATE))) * 0.2).astype(np.float32)


def best_ms(work, repeat: int = 5) -> float:
    """The fastest of `repeat` runs, in milliseconds (the machine may be busy with other work)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def soundfile_mp3(clip: Clip) -> bytes:
    """The MP3 the player embedded before issue 27: libsndfile's variable bitrate, compression 0.5."""
    buffer = io.BytesIO()
    options = {"bitrate_mode": "VARIABLE", "compression_level": 0.5}
    sf.write(buffer, np.clip(clip.samples, -1, 1).T, clip.sample_rate, format="MP3", **options)
    return buffer.getvalue()


def main() -> None:
    print(f"{SECONDS:g} s of {RATE} Hz stereo: HTML bytes in the notebook, and milliseconds (best of 5)")
    print(
        f"{'signal':12} {'ours (MP3)':>10} {'IPython Audio':>14} {'ratio':>6} {'MP3 ms':>7}"
        f" {'before ms':>9} {'player ms':>9} {'IPython ms':>10} {'OGG 0.7 base64':>15}"
    )
    for name, samples in (("chord+noise", chord()), ("white noise", white_noise())):
        clip = Clip(samples, RATE)
        ours = len(clip._repr_html_().encode())
        theirs = len(Audio(samples, rate=RATE)._repr_html_().encode())
        mp3_ms = best_ms(clip.encode)
        before_ms = best_ms(lambda: soundfile_mp3(clip))  # noqa: B023 (called at once)
        player_ms = best_ms(lambda: Clip(samples, RATE)._repr_html_())  # noqa: B023
        theirs_ms = best_ms(lambda: Audio(samples, rate=RATE)._repr_html_())  # noqa: B023
        ogg = len(base64.b64encode(clip.encode("OGG", compression=0.7)))
        verdict = "ok" if ours <= GOAL_BYTES and mp3_ms <= GOAL_MS else "OVER GOAL"
        print(
            f"{name:12} {ours / 1000:8.1f}KB {theirs / 1000:12.1f}KB {theirs / ours:5.1f}x {mp3_ms:7.0f}"
            f" {before_ms:9.0f} {player_ms:9.0f} {theirs_ms:10.0f} {ogg / 1000:13.1f}KB"
            f"  ({verdict}: <= {GOAL_BYTES // 1000} KB, MP3 <= {GOAL_MS} ms)"
        )


if __name__ == "__main__":
    main()
