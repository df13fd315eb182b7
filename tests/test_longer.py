"""Extend, repaint and loop (flexaudio_helpers/longer.py) on the offline model, in this process.

The offline model's audio is noise, so these check what does not depend on it sounding good:
lengths, the samples promised unchanged, seeds, lineage, the loop's seam, and bad input.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.errors import InvalidParameters
from flexaudio_helpers.longer import extend, loop, repaint
from flexaudio_helpers.serving.pipeline import load_generator

RATE = 44_100
FAST = {"num_inference_steps": 2}


@pytest.fixture(scope="module")
def generator():
    return load_generator("offline", device="cpu")


def rising_tone(seconds: float) -> np.ndarray:
    """A 233 Hz tone that swells: cut anywhere, its end does not meet its start."""
    time = np.arange(round(seconds * RATE)) / RATE
    tone = 0.05 * (1 + 4 * time / seconds) * np.sin(2 * np.pi * 233 * time)
    return np.stack([tone, tone * 0.9]).astype(np.float32)


@pytest.fixture
def source_file(tmp_path):
    path = tmp_path / "source.wav"
    sf.write(path, rising_tone(5.0).T, RATE, subtype="PCM_16")
    return path


def test_extend_keeps_the_source_and_lasts_exactly_to(generator, source_file, tmp_path):
    out = extend(generator, source_file, to=60.0, prompts=["dawn", "rain"], out=tmp_path / "long.wav",
                      progress=lambda *args: None, seed=3, **FAST)  # fmt: skip
    written, rate = sf.read(out, dtype="int16")
    original, _ = sf.read(source_file, dtype="int16")
    assert rate == RATE and len(written) == 60 * RATE
    join = len(original) - round(0.05 * RATE)
    assert np.array_equal(written[:join], original[:join])  # bit for bit up to the first join
    assert not np.array_equal(written[join : len(original)], original[join:])  # then the crossfade
    clip = Clip.load(out)
    assert clip.lineage["verb"] == "extend" and clip.lineage["source"]["path"] == str(source_file)
    assert clip.lineage["windows"] == [{"prompt": "dawn", "seed": 3}, {"prompt": "rain", "seed": 4}]


def test_repaint_changes_only_the_section_and_its_seed_reproduces(generator):
    clip = Clip(rising_tone(6.0), RATE)
    first = repaint(generator, clip, 2.0, 3.5, prompt="thunder", seed=9, **FAST)
    start, end = 2 * RATE, round(3.5 * RATE)
    assert first.frames == clip.frames
    assert np.array_equal(first.samples[:, :start], clip.samples[:, :start])
    assert np.array_equal(first.samples[:, end:], clip.samples[:, end:])
    assert np.abs(first.samples[:, start:end] - clip.samples[:, start:end]).max() > 0.01
    again = repaint(generator, clip, 2.0, 3.5, prompt="thunder", seed=9, **FAST)
    assert np.array_equal(first.samples, again.samples)
    source = {"seconds": 6.0, "sample_rate": RATE, "prompt": None, "seed": None}
    windows = [{"prompt": "thunder", "seed": 9}]
    assert first.lineage == {"verb": "repaint", "source": source, "section": [2.0, 3.5], "windows": windows}


def _seam_is_smooth(samples: np.ndarray) -> bool:
    jump = np.abs(samples[:, 0] - samples[:, -1]).max()
    return bool(jump <= np.percentile(np.abs(np.diff(samples, axis=1)), 99.9))


def test_a_loop_lasts_whole_beats_and_its_seam_is_no_rougher_than_the_clip(generator):
    clip = Clip(rising_tone(8.0), RATE, None)
    bars, bpm = 3, 100.0
    length = round(bars * 4 * 60 / bpm * RATE)
    assert not _seam_is_smooth(clip.samples[:, :length])  # cut plainly, the seam jumps
    looped = loop(generator, clip, bars=bars, bpm=bpm, prompt="drums", seed=2, **FAST)
    assert looped.frames == length and math.isclose(looped.duration / (60 / bpm), 12.0)
    assert _seam_is_smooth(looped.samples)
    assert looped.lineage["bars"] == 3 and looped.lineage["bpm"] == 100.0


def _never(window, progress):
    raise AssertionError("nothing may be generated for bad input")


CLIP = Clip(rising_tone(4.0), RATE, None)
GUIDANCE = "parameters.guidance_scale"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda out: repaint(_never, CLIP, -1.0, 2.0, prompt="x"), "start"),
        (lambda out: repaint(_never, CLIP, 1.0, 4.5, prompt="x"), "end"),
        (lambda out: repaint(_never, CLIP, 2.0, 2.0, prompt="x"), "end"),
        (lambda out: repaint(_never, Clip(np.zeros((2, 60 * RATE)), RATE), 1.0, 50.0, prompt="x"), "end"),
        (lambda out: repaint(_never, CLIP, 1.0, 2.0), "prompt"),
        (lambda out: extend(_never, CLIP, to=3.0, prompts="x", out=out), "to"),
        (lambda out: extend(_never, CLIP, to=math.nan, prompts="x", out=out), "to"),
        (lambda out: extend(_never, CLIP, to=601.0, prompts="x", out=out), "to"),
        (lambda out: extend(_never, CLIP, to=60.0, prompts=["x"] * 10_000, out=out), "prompts"),
        (lambda out: extend(_never, CLIP, to=60.0, prompts=[], out=out), "prompts"),
        (lambda out: extend(_never, CLIP, to=60.0, prompts="x", out=out, keep_seconds=0), "keep_seconds"),
        (lambda out: extend(_never, CLIP, to=60.0, prompts="x", out=out, guidance_scale=99), GUIDANCE),
        (lambda out: loop(_never, CLIP, bars=0, bpm=120, prompt="x"), "bars"),
        (lambda out: loop(_never, CLIP, bars=4, bpm=0, prompt="x"), "bpm"),
        (lambda out: loop(_never, CLIP, bars=4, bpm=math.nan, prompt="x"), "bpm"),
        (lambda out: loop(_never, CLIP, bars=4, bpm=60, prompt="x"), "bars"),  # 16 s from a 4 s clip
    ],
)  # fmt: skip
def test_bad_input_names_its_field_and_nothing_is_made_or_written(tmp_path, call, field):
    with pytest.raises(InvalidParameters) as caught:
        call(tmp_path / "out.wav")
    assert caught.value.field == field and "allowed" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def _peaks(minutes: float) -> dict:
    """bench/extend.py's measurement: a fresh process, the offline model, one plain window (0) or
    an extension to `minutes`; its peak resident memory and what it was once the model was loaded."""
    bench = Path(__file__).parents[1] / "bench" / "extend.py"
    command = [sys.executable, str(bench), "--child", str(minutes), "--steps", "1"]
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}  # as bench/extend.py says why
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600, env=environment)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_ten_minute_extension_stays_within_twice_one_windows_memory():
    one, short, long = _peaks(0), _peaks(1), _peaks(10)
    assert long["peak"] <= 2 * one["peak"]
    # Flat in the length: 10 minutes of float32 stereo held in memory would add 211 MiB.
    assert long["peak"] - long["loaded"] <= short["peak"] - short["loaded"] + 100


class Stop(Exception):
    pass


def test_stopping_an_extension_from_its_progress_writes_nothing(generator, tmp_path):
    seen = []

    def progress(window, windows, step, steps):
        seen.append((window, windows, step, steps))
        if window == 1:
            raise Stop  # e.g. a Stop button's threading.Event, checked here

    with pytest.raises(Stop):
        extend(
            generator, CLIP, to=80.0, prompts="x", out=tmp_path / "x.wav", progress=progress, seed=1, **FAST
        )
    assert seen == [(0, 2, 1, 2), (0, 2, 2, 2), (1, 2, 1, 2)]
    assert list(tmp_path.iterdir()) == []


def test_a_loop_without_bpm_takes_the_measured_tempo(generator):
    clicks = np.zeros((2, 8 * RATE), np.float32)
    for beat in range(16):  # 120 bpm: a short 1 kHz click every 0.5 s
        start = beat * RATE // 2
        clicks[:, start : start + 441] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(441) / RATE)
    looped = loop(generator, (clicks, RATE), bars=2, prompt="clicks", seed=1, **FAST)
    bpm = looped.lineage["bpm"]
    assert looped.lineage["bpm_measured"] and abs(bpm - 120) < 120 * 0.03
    assert looped.frames == round(8 * 60 / bpm * RATE)
