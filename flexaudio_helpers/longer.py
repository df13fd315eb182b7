"""Past the model's 47.55 s window: extend a clip to minutes, make a seamless loop, repaint a section.

Each verb keeps part of a window and lets the model generate the rest (`serving.keep`), one
whole window at a time, on a generator in this process (`load_generator`) or through an
endpoint that lists the ``keep_ranges`` extension (our local endpoint, via `AudioClient`):

- `extend`: each new window keeps the last `KEEP_SECONDS` of the one before and generates the
  rest; windows go to the file as they finish, joined by short crossfades, so memory stays that
  of one window however long the piece.
- `repaint`: regenerates ``[start, end)`` of a clip; outside it the clip's own samples are put
  back, and the model's audio is used only inside, faded in and out at the section's edges.
- `loop`: trims a clip to a whole number of beats, turns it so that its end-to-start seam sits
  in the middle, repaints around the seam, and turns it back: the step from the last sample to
  the first is then one the model made, inside a continuous stretch.

The chaining is written once, on a *window maker* (`Maker`): `window_here` makes windows with a
generator in this process (chaining in latent space, no VAE round trip), `window_through` asks
an endpoint for one window per request. Every result records its lineage (`Clip.lineage`).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidParameters
from .inputs import as_request
from .params import CHANNELS, DEFAULT_STEPS, MAX_SEED, RANDOM_SEED_LIMIT, SAMPLE_RATE

if TYPE_CHECKING:
    from .audio import Clip
    from .client import AudioClient
    from .serving.pipeline import AudioGenerator, GeneratedAudio

# What each new window keeps of the one before: 10 s is 5 bars at 120 bpm, enough for the model to
# hear tempo, key and texture, and leaves 37.55 s of new audio per 47.55 s window (1.27 windows
# of compute per window of music). bench/extend.py measures the join against K.
KEEP_SECONDS = 10.0
CROSSFADE_SECONDS = 0.05  # each join: 50 ms, short enough to hide nothing, long enough not to click
LOOP_SEAM_SECONDS = 1.0  # a loop's repainted section reaches this far either side of its seam
MAX_PIECE_SECONDS = 600.0  # 10 minutes: what `Clip.load` reads back at 44.1 kHz
HOP = 2048  # audio samples per latent frame (Stable Audio Open's VAE)
WINDOW_FRAMES = 1024  # latent frames per window: 1024 * 2048 / 44100 = 47.55 s

# progress(window, windows, step, steps): after every denoising step (through an endpoint, once
# per window); it may raise to stop the piece, and then nothing is written.
Progress = Callable[[int, int, int, int], None]


@dataclass(frozen=True)
class Window:
    """One window to make: its prompt and seed, and what it keeps: the latent frames `ranges`
    [(first, last)] of `audio` (channels, samples) laid from the window's start. In this process
    `latents` (channels, frames) may stand in for encoding the audio."""

    prompt: str
    seed: int
    audio: np.ndarray
    ranges: list[tuple[int, int]]
    latents: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class Made:
    """A window made: its audio (channels, 1024 * 2048), its latents (in this process only), and
    whether it came from the offline model."""

    audio: np.ndarray
    latents: Any
    offline: bool


Maker = Callable[[Window, Callable[[int, int], None] | None], Made]


def window_here(generator: AudioGenerator, **parameters: Any) -> Maker:
    """A `Maker` on a generator in this process; `parameters` as `generate_here` takes them."""
    from .serving.keep import encode, kept

    pipeline = generator.pipeline

    def make(window: Window, progress: Callable[[int, int], None] | None) -> Made:
        if window.latents is not None:
            pieces = [(first, window.latents[:, first:last]) for first, last in window.ranges]
        else:
            pieces = [
                (first, encode(pipeline, window.audio[:, first * HOP : last * HOP]))
                for first, last in window.ranges
            ]
        request = as_request(window.prompt, **parameters).with_parameters(seed=window.seed)
        latents, audio = generator.window(request, kept(pipeline, pieces), progress)
        return Made(audio, latents, generator.offline)

    return make


def window_through(client: AudioClient, **parameters: Any) -> Maker:
    """A `Maker` through an endpoint: one request per window (`AudioClient.window`), progress
    once the window has come back."""

    def make(window: Window, progress: Callable[[int, int], None] | None) -> Made:
        last = max(end for _, end in window.ranges)
        ranges = [(first * HOP / SAMPLE_RATE, end * HOP / SAMPLE_RATE) for first, end in window.ranges]
        clip = client.window(
            window.prompt,
            (window.audio[:, : last * HOP], SAMPLE_RATE),
            ranges,
            seed=window.seed,
            **parameters,
        )
        if clip.sample_rate != SAMPLE_RATE or clip.frames != WINDOW_FRAMES * HOP:
            from .errors import InvalidAudioResponse

            raise InvalidAudioResponse(
                f"the endpoint answered {clip.frames} frames at {clip.sample_rate} Hz for a window; "
                f"expected {WINDOW_FRAMES * HOP} at {SAMPLE_RATE} Hz"
            )
        if progress is not None:
            steps = as_request("x", **parameters).parameters.num_inference_steps or DEFAULT_STEPS
            progress(steps, steps)
        return Made(np.broadcast_to(clip.samples, (CHANNELS, clip.frames)), None, clip.offline)

    return make


def generated_window(
    generator: AudioGenerator, request: Any, audio: np.ndarray, ranges: list[list[float]], progress: Any
) -> GeneratedAudio:
    """The endpoint's side of `window_through`: one whole window of `request` keeping `ranges`
    (seconds) of `audio` (stereo at the model's rate), as `GeneratedAudio`."""
    import time

    from .serving.pipeline import GeneratedAudio

    seed = request.parameters.seed
    seed = secrets.randbelow(RANDOM_SEED_LIMIT) if seed is None else seed
    whole = audio.shape[1] // HOP  # ranges past the audio sent keep only what was sent
    frames = [(round(a * SAMPLE_RATE / HOP), min(whole, round(b * SAMPLE_RATE / HOP))) for a, b in ranges]
    frames = [(first, last) for first, last in frames if last > first]
    parameters = request.parameters.model_dump(exclude_none=True)
    started = time.perf_counter()
    made = window_here(generator, **parameters)(Window(request.inputs, seed, audio, frames), progress)
    return GeneratedAudio(made.audio, generator.sample_rate, seed, time.perf_counter() - started)


def _maker(where: Any, parameters: dict[str, Any]) -> Maker:
    """A generator, a client or a `Maker` as a `Maker`; the parameters checked first."""
    parameters = _checked(parameters)
    if hasattr(where, "pipeline"):
        return window_here(where, **parameters)
    if hasattr(where, "window"):
        return window_through(where, **parameters)
    return where


# ----- the verbs, on a generator, a client or any window maker -----------------------------------
def extend(
    where: AudioGenerator | AudioClient,
    source: Any,
    /,
    *,
    to: float,
    prompts: str | list[str],
    out: str | Path,
    keep_seconds: float = KEEP_SECONDS,
    progress: Progress | None = None,
    **parameters: Any,
) -> Path:
    """Extend `source` (a `Clip`, a file or ``(samples, rate)``) to `to` seconds (at most 600),
    written to `out` (.wav or .flac), on `where`: a generator (`load_generator`) or an `AudioClient`.

    `prompts`: one per window, the last repeated (a piece can move from dawn to rain to thunder).
    Each window asks for the whole window, keeps the last `keep_seconds` of the one before and
    makes the rest; `parameters` (``num_inference_steps``, ``guidance_scale``, ``negative_prompt``,
    ``seed``) apply to every window, window k with seed + k. The file holds the source's samples
    unchanged up to the first join (at the model's rate, as 16-bit PCM), then each window after a
    50 ms crossfade; windows are written as they finish, so memory stays that of one window. Returns
    `out`; ``Clip.load(out)`` reads it with its lineage. `progress(window, windows, step, steps)`
    replaces the step bar and may raise to stop: then no file is written.

    Raises `InvalidParameters` naming the field (``to``, ``prompts``, ``keep_seconds``, ``source``
    or a parameter) before anything is generated or written.
    """
    from .audio import Clip

    make = _maker(where, parameters)
    samples, origin = _source(source, MAX_PIECE_SECONDS, "source")
    have = samples.shape[1]
    total = _seconds(to, "to", have / SAMPLE_RATE, MAX_PIECE_SECONDS)
    keep = round(_number(keep_seconds, "keep_seconds", HOP / SAMPLE_RATE, 40.0) * SAMPLE_RATE / HOP)
    first_keep = min(keep, have // HOP)
    if first_keep < 1:
        at_least = f"at least {HOP} samples ({HOP / SAMPLE_RATE:.3f} s)"
        raise _invalid("source", f"{have} samples is too short", at_least)
    window = WINDOW_FRAMES * HOP
    windows = 1 + max(0, math.ceil((total - have - (window - first_keep * HOP)) / (window - keep * HOP)))
    prompts = _prompts(prompts, windows)
    seeds = _seeds(parameters.get("seed"), windows)
    lineage = {
        "verb": "extend",
        "source": origin,
        "keep_seconds": keep * HOP / SAMPLE_RATE,
        "crossfade_seconds": CROSSFADE_SECONDS,
        "windows": [{"prompt": prompts[k], "seed": seeds[k]} for k in range(windows)],
    }
    request = as_request(prompts[0], **parameters).with_parameters(seed=seeds[0])
    fade = min(round(CROSSFADE_SECONDS * SAMPLE_RATE), first_keep * HOP)
    report = _reporter(progress, windows, parameters)
    written, cut = 0, have - fade
    held, tail, made = samples[:, cut:], samples[:, have - first_keep * HOP :], None
    with ExitStack() as files:
        for k in range(windows):
            frames = tail.shape[1] // HOP
            latents = _shifted(made.latents if made else None, frames)
            made = make(Window(prompts[k], seeds[k], tail, [(0, frames)], latents), report(k))
            if k == 0:  # opened once the first window says whether it is the offline model's
                piece = Clip(
                    np.zeros((CHANNELS, 0)), SAMPLE_RATE, request, seeds[0], {}, made.offline, lineage
                )
                stream = files.enter_context(piece.writer(out))
                parts = [samples[:, :cut]]
            audio, join = made.audio, frames * HOP
            parts += [_crossfade(held, audio[:, join - held.shape[1] : join]), audio[:, join : window - fade]]
            held, tail = audio[:, window - fade :], audio[:, window - keep * HOP :]
            for part in parts + ([held] if k == windows - 1 else []):
                part = part[:, : total - written]
                stream.write(np.clip(part, -1.0, 1.0).T)
                written += part.shape[1]
            parts = []
    return Path(out)


def repaint(
    where: AudioGenerator | AudioClient,
    clip: Any,
    /,
    start: float,
    end: float,
    *,
    prompt: str | None = None,
    progress: Progress | None = None,
    **parameters: Any,
) -> Clip:
    """`clip` (a `Clip`, a file or ``(samples, rate)``) with ``[start, end)`` seconds made again by
    `prompt` (else the clip's own), on a generator or an `AudioClient`; `parameters` as `extend`.

    Outside the section the samples are the clip's own; inside, the model's audio fades in and
    out over 50 ms at the section's edges. The section is at most 45.05 s (a window less 2.5 s of
    context). Raises `InvalidParameters` naming ``start``, ``end``, ``prompt`` or a parameter.
    """
    from .audio import Clip

    make = _maker(where, parameters)
    samples, origin = _source(clip, MAX_PIECE_SECONDS, "clip")
    duration = samples.shape[1] / SAMPLE_RATE
    start = _number(start, "start", 0.0, duration, upper_open=True)
    end = _number(end, "end", start, duration, lower_open=True)
    longest = WINDOW_FRAMES * HOP / SAMPLE_RATE - 2.5
    if end - start > longest:
        too_long = f"a section of {end - start:.2f} s is too long"
        raise _invalid("end", too_long, f"at most {longest:.2f} s after start")
    prompt = _prompt_of(prompt, clip)
    seed = _seeds(parameters.get("seed"), 1)[0]
    section = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
    result, offline = _repaint_samples(
        make, samples, *section, prompt, seed, _reporter(progress, 1, parameters)
    )
    lineage = {
        "verb": "repaint",
        "source": origin,
        "section": [start, end],
        "windows": [{"prompt": prompt, "seed": seed}],
    }
    request = as_request(prompt, **parameters).with_parameters(seed=seed)
    return Clip(result, SAMPLE_RATE, request, seed, {}, offline, lineage)


def loop(
    where: AudioGenerator | AudioClient,
    clip: Any,
    /,
    *,
    bars: int,
    bpm: float | None = None,
    beats_per_bar: int = 4,
    prompt: str | None = None,
    progress: Progress | None = None,
    **parameters: Any,
) -> Clip:
    """A loop of `bars` bars from the start of `clip`, seamless on repeat, on a generator or an
    `AudioClient`: exactly ``bars * beats_per_bar`` beats at `bpm` (else the tempo `analyze`
    measures), rounded to the sample. The end-to-start seam is repainted (see the module's
    docstring); `prompt` and `parameters` as `repaint`. Raises `InvalidParameters` naming ``bars``,
    ``beats_per_bar``, ``bpm``, ``prompt`` or a parameter.
    """
    from .audio import Clip

    make = _maker(where, parameters)
    samples, origin = _source(clip, MAX_PIECE_SECONDS, "clip")
    bars = _count(bars, "bars")
    beats_per_bar = _count(beats_per_bar, "beats_per_bar")
    measured = bpm is None
    if measured:
        from .analysis import analyze

        bpm = analyze((samples, SAMPLE_RATE)).tempo_bpm
        if bpm is None:
            raise _invalid("bpm", "the clip has no clear beat to measure", "give bpm: a tempo above 0")
    bpm = _number(bpm, "bpm", 0.0, 1000.0, lower_open=True)
    length = round(bars * beats_per_bar * 60.0 / bpm * SAMPLE_RATE)
    if length > samples.shape[1]:
        raise _invalid(
            "bars",
            f"{bars} bars of {beats_per_bar} beats at {bpm:.2f} bpm last {length / SAMPLE_RATE:.2f} s, "
            f"longer than the clip ({samples.shape[1] / SAMPLE_RATE:.2f} s)",
            "a loop no longer than the clip",
        )
    if length < 4 * round(CROSSFADE_SECONDS * SAMPLE_RATE):
        raise _invalid("bars", f"a loop of {length / SAMPLE_RATE:.3f} s is too short", "at least 0.2 s")
    prompt = _prompt_of(prompt, clip)
    seed = _seeds(parameters.get("seed"), 1)[0]
    half = length // 2
    turned = np.roll(samples[:, :length], -half, axis=1)  # the end-to-start seam now sits at length - half
    seam, reach = length - half, min(round(LOOP_SEAM_SECONDS * SAMPLE_RATE), length // 4)
    report = _reporter(progress, 1, parameters)
    repainted, offline = _repaint_samples(make, turned, seam - reach, seam + reach, prompt, seed, report)
    lineage = {
        "verb": "loop",
        "source": origin,
        "bars": bars,
        "beats_per_bar": beats_per_bar,
        "bpm": bpm,
        "bpm_measured": measured,
        "seconds": length / SAMPLE_RATE,
        "seam_section": [(seam - reach) / SAMPLE_RATE, (seam + reach) / SAMPLE_RATE],
        "windows": [{"prompt": prompt, "seed": seed}],
    }
    request = as_request(prompt, **parameters).with_parameters(seed=seed)
    return Clip(np.roll(repainted, half, axis=1), SAMPLE_RATE, request, seed, {}, offline, lineage)


# ----- pieces ------------------------------------------------------------------------------------
def _repaint_samples(
    make: Maker, samples: np.ndarray, start: int, end: int, prompt: str, seed: int, progress: Any
) -> tuple[np.ndarray, bool]:
    """`samples` with [start, end) made again by one window around it, faded in and out."""
    window = WINDOW_FRAMES * HOP
    offset = 0
    if samples.shape[1] > window:  # the window centred on the section, on a frame boundary
        offset = min(max(0, (start + end - window) // 2), samples.shape[1] - window) // HOP * HOP
    audio = samples[:, offset : offset + window]
    free_first, free_last = (start - offset) // HOP, -(-(end - offset) // HOP)
    ranges = [(a, b) for a, b in ((0, free_first), (free_last, audio.shape[1] // HOP)) if b > a]
    made = make(Window(prompt, seed, audio, ranges), progress(0))
    result = samples.copy()
    fade = min(round(CROSSFADE_SECONDS * SAMPLE_RATE), (end - start) // 4)
    inside = made.audio[:, start - offset : end - offset]
    section = samples[:, start:end]
    ramp = np.ones(end - start, np.float32)
    ramp[:fade] = np.arange(1, fade + 1) / (fade + 1)
    ramp[len(ramp) - fade :] = ramp[:fade][::-1]
    result[:, start:end] = section * (1 - ramp) + inside * ramp
    return result, made.offline


def _crossfade(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    ramp = (np.arange(1, old.shape[1] + 1) / (old.shape[1] + 1)).astype(np.float32)
    return old * (1 - ramp) + new * ramp


def _shifted(latents: Any, frames: int) -> Any:
    """The last `frames` of a window's latents, moved to the start of the next window."""
    if latents is None:
        return None
    moved = latents.new_zeros(latents.shape)
    moved[:, :frames] = latents[:, latents.shape[1] - frames :]
    return moved


def _reporter(progress: Progress | None, windows: int, parameters: dict[str, Any]) -> Callable[[int], Any]:
    """For window k, the step progress to hand the maker: `progress`'s, else a tqdm bar's."""
    if progress is None:
        from tqdm.auto import tqdm

        steps = as_request("x", **parameters).parameters.num_inference_steps or DEFAULT_STEPS
        bar = tqdm(total=windows * steps, desc=f"{windows} window{'s' * (windows > 1)}", unit="step")

        def progress(window: int, count: int, step: int, steps: int) -> None:
            bar.update(window * steps + step - bar.n)
            if window == count - 1 and step == steps:
                bar.close()

    return lambda k: lambda step, steps: progress(k, windows, step, steps)


def _source(source: Any, max_seconds: float, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(stereo float32 at the model's rate, what the lineage says of it)."""
    from .audio import Clip
    from .init_audio import source_arrays

    samples, rate = source_arrays(source, max_seconds=max_seconds, field=name)
    if rate != SAMPLE_RATE:
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=SAMPLE_RATE)
    samples = np.ascontiguousarray(np.broadcast_to(samples, (CHANNELS, samples.shape[1])), dtype=np.float32)
    origin: dict[str, Any] = {"seconds": round(samples.shape[1] / SAMPLE_RATE, 4), "sample_rate": rate}
    if isinstance(source, str | Path):
        origin["path"] = str(source)
    elif isinstance(source, Clip):
        origin.update(prompt=source.prompt, seed=source.seed)
        if source.lineage:
            origin["lineage"] = source.lineage
    return samples, origin


def _checked(parameters: dict[str, Any]) -> dict[str, Any]:
    """The window parameters, validated now (before anything runs); lengths are the window's."""
    for name in ("audio_end_in_s", "audio_start_in_s", "audio_length_in_s", "init_audio"):
        if name in parameters:
            raise _invalid(name, "a window is always the whole window", "leave it out")
    as_request("x", **parameters)
    return {name: value for name, value in parameters.items() if name != "seed"}


def _prompts(prompts: str | list[str], windows: int) -> list[str]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not 1 <= len(prompts) <= windows:
        raise _invalid("prompts", f"{len(prompts)} prompts for {windows} windows", f"1 to {windows} prompts")
    for prompt in prompts:
        as_request(prompt)  # each a valid prompt (InvalidParameters names `inputs`)
    return prompts + prompts[-1:] * (windows - len(prompts))


def _prompt_of(prompt: str | None, clip: Any) -> str:
    prompt = prompt if prompt is not None else getattr(clip, "prompt", None)
    if prompt is None:
        raise _invalid("prompt", "the clip has no prompt of its own", "a prompt")
    as_request(prompt)
    return prompt


def _seeds(seed: int | None, count: int) -> list[int]:
    base = secrets.randbelow(RANDOM_SEED_LIMIT) if seed is None else seed
    return [(base + k) % (MAX_SEED + 1) for k in range(count)]


def _seconds(value: Any, name: str, low: float, high: float) -> int:
    """`value` seconds as samples, above `low` up to `high` seconds."""
    return round(_number(value, name, low, high, lower_open=True) * SAMPLE_RATE)


def _number(
    value: Any, name: str, low: float, high: float, *, lower_open: bool = False, upper_open: bool = False
) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    above = number > low if lower_open else number >= low
    below = number < high if upper_open else number <= high
    if not (math.isfinite(number) and above and below):
        above_word, below_word = ("more than" if lower_open else "from"), ("under" if upper_open else "up to")
        allowed = f"{above_word} {low:g}, {below_word} {high:g}"
        raise _invalid(name, f"{value!r} is out of range", allowed)
    return float(number)


def _count(value: Any, name: str) -> int:
    if type(value) is not int or not 1 <= value <= 1000:
        raise _invalid(name, f"{value!r} is out of range", "a whole number from 1 to 1000")
    return value


def _invalid(name: str, problem: str, allowed: str) -> InvalidParameters:
    return InvalidParameters(f"{name}: {problem}; allowed: {allowed}", field=name, allowed=allowed)
