"""The explorer's memory and its background work, kept apart from the widgets.

- `Take`: one clip made in the session, numbered, with where it came from (shown in a notebook as
  its player and a table of its parameters, seed and timings).
- `Session`: every take, each saved as FLAC as it comes, only the last few held in memory (so an
  afternoon of takes stays within a few hundred MiB); saving one, and exporting them all with a
  replayable manifest. `LastUsed` is the small cache that holds them (and the explorer's plots).
- `Job`: a worker thread whose result can be abandoned (Cancel), with an elapsed-time tick, and
  whose outcome code can wait for (`Job.result`, like a `concurrent.futures.Future`).
- `sweep_requests`: one request per value of the swept parameter, validated before anything is sent;
  `noise_level` checks where "Start from this take" starts.

Nothing here imports ipywidgets, so it can be used (and read) on its own.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import html
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from ..audio import Clip
from ..batch import ManifestLine, write_manifest
from ..errors import InvalidParameters, UnsafeStateError
from ..files import write_atomic
from ..params import ALLOWED, MIN_INIT_NOISE_LEVEL, SWEEPABLE, GenerationRequest, shorten

log = logging.getLogger(__name__)

MAX_SWEEP_VALUES = 8
# Takes whose samples stay in memory (16 MiB each at 47.55 s stereo): a whole sweep, so plotting
# one reads nothing back. Older takes are read back from their FLAC files when used.
HELD_TAKES = MAX_SWEEP_VALUES
DEFAULT_VARIATIONS = 4
# Where audio-to-audio starts denoising (the scheduler's sigma): the sampler ends at 0.3, so a level
# must be above it. At 1 the source's shape survives; at 100 it is all but gone (text-to-audio
# starts at 500). The slider's stops, roughly doubling:
NOISE_LEVELS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
MAX_NOISE_LEVEL = NOISE_LEVELS[-1]
# A session's own takes folder: in the temporary folder, held (flock) by its session while it lives,
# so a folder left by a killed kernel is found and removed when the next session starts.
TAKES_PREFIX = "flexaudio-takes-"
IN_USE_NAME = ".in-use"


class LastUsed:
    """At most `size` values by key; putting one more drops the least recently used (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The value for `key`; when it is not held, `make()` makes it and it is held as the newest."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = make()  # outside the lock: reading or plotting a clip takes a while
        self.put(key, value)
        return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)

    def keys(self) -> tuple[Any, ...]:
        """The keys held, least recently used first."""
        with self._lock:
            return tuple(self._values)


@dataclass(frozen=True, eq=False)
class Take:
    """One clip of the session: `number` counts from 1, `origin` says what made it.

    Its lineage: `parent` is the take it was varied or started from; a take made by audio-to-audio
    started from take `source`'s audio at `init_noise_level` (a variation of it did too).
    A take keeps what describes its clip (request, seed, timings, length, measurements); the
    samples are its `session`'s, which gives them back as `clip`, from the take's FLAC file
    (`path`) when they are no longer held in memory.
    """

    number: int
    session: Session = field(repr=False)
    request: GenerationRequest | None  # with the seed actually used: sending it again remakes this clip
    seed: int | None
    duration: float
    timings: dict[str, float] = field(default_factory=dict)
    offline: bool = False
    origin: str = "generate"
    made_at: float = field(default_factory=time.time)
    click_to_audio: float | None = None  # seconds from the click to the player being shown
    parent: int | None = None
    source: int | None = None
    init_noise_level: float | None = None

    @property
    def clip(self) -> Clip:
        """The take's clip, samples included (read back from `path` when they were let go)."""
        return self.session.clip(self)

    @property
    def path(self) -> Path:
        """The take's FLAC file in the session's folder."""
        return self.session.folder / self.file_name()

    @property
    def prompt(self) -> str | None:
        return self.request.inputs if self.request else None

    def parameters(self) -> dict[str, Any]:
        request = self.request
        return request.parameters.model_dump(exclude_none=True) if request else {}

    def short_parameters(self) -> str:
        """E.g. ``10.0 s · 200 steps · guidance 7 · seed 42``."""
        values = self.parameters()
        parts = [f"{self.duration:.1f} s"]
        if "num_inference_steps" in values:
            parts.append(f"{values['num_inference_steps']} steps")
        if "guidance_scale" in values:
            parts.append(f"guidance {values['guidance_scale']:g}")
        parts.append(f"seed {self.seed}")
        return " · ".join(parts)

    def label(self) -> str:
        """One line for the history list: prompt, parameters, and tempo, loudness and brightness.

        A take made from another starts with its lineage: ``#7 ← varied from #3 · ...``.
        """
        prompt = shorten(self.prompt or "(no prompt)", 40)
        described = f"{prompt} · {self.short_parameters()} · {self.measured()}"
        if self.parent is not None:
            return f"#{self.number} ← {self.origin} · {described}"
        return f"#{self.number} {described} ({self.origin})"

    def lineage(self) -> dict[str, Any]:
        """`parent`, `source` and `init_noise_level`, those that are set (for the manifest)."""
        values = {"parent": self.parent, "source": self.source, "init_noise_level": self.init_noise_level}
        return {name: value for name, value in values.items() if value is not None}

    def measured(self) -> str:
        """E.g. ``128 bpm · -14.2 LUFS · 2,310 Hz`` (analysed once, then kept with the take)."""
        return self._headline

    @cached_property
    def _headline(self) -> str:
        from ..analysis import headline  # imported on use: the analysis loads librosa

        return headline(self.clip)

    def file_name(self, suffix: str = ".flac") -> str:
        return f"clip-{self.number:03d}-seed{self.seed}{suffix}"

    def details_html(self) -> str:
        """The parameters, seed and timings, as a small HTML table."""
        rows = [("prompt", self.prompt or "")]
        rows += [(name, value) for name, value in self.parameters().items() if name != "seed"]
        rows.append(("seed used", self.seed))
        timings = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(self.timings.items()))
        if self.click_to_audio is not None:
            timings += f"{', ' if timings else ''}click to audio {self.click_to_audio:.2f} s"
        rows.append(("timing", timings or "not reported"))
        body = "".join(
            f'<tr><th style="text-align:left;padding-right:1em">{html.escape(str(name))}</th>'
            f"<td>{html.escape(str(value))}</td></tr>"
            for name, value in rows
        )
        return f'<table class="flexaudio-details" style="font-size:90%">{body}</table>'

    def _repr_html_(self) -> str:
        """In a notebook: "Clip #n", the player, and the details table."""
        return self.clip.player_html(f"Clip #{self.number} ({self.origin})") + self.details_html()


class Session:
    """Every take made in one explorer session, in order (thread-safe), with bounded memory.

    Each take's clip is saved as FLAC in `folder` as it is added (by default a temporary folder,
    removed by `close()` or when the session is collected; a folder given here is kept). Only the
    `HELD_TAKES` most recently used takes keep their samples in memory; the others are read back
    from their files when played, compared, plotted or exported. 100 takes of 47.55 s stereo
    (bench/explorer_memory.py): 215 MiB resident after 10, 40 or 100 takes, where holding every
    take took 229, 709 and 1,669 MiB. Saving costs about 0.2 s per 47 s take, reading one back
    0.08 s; on disk, about 7 MB per 47 s take of noise (less for music).

    A take's file is read back (or saved elsewhere) only while it is still the regular file that
    was saved, checked by size and SHA-256; a temporary folder left by a killed kernel is removed
    when the next session starts.
    """

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self._remove_folder = None
        if folder is None:
            _remove_stale_takes()
            folder = tempfile.mkdtemp(prefix=TAKES_PREFIX)
            held = _hold(folder)
            self._remove_folder = weakref.finalize(self, _remove_held, folder, held)
        self.folder = Path(folder)
        self._takes: list[Take] = []
        self._clips = LastUsed(HELD_TAKES)  # take number -> Clip
        self._saved: dict[int, tuple[int, bytes]] = {}  # take number -> its file's size and SHA-256
        self._lock = threading.Lock()

    def add(
        self, clip: Clip, origin: str = "generate", click_to_audio: float | None = None, **lineage: Any
    ) -> Take:
        """Number `clip`, save it in the session's folder and hold it; return its take.

        `lineage` is the take's ``parent``, ``source`` and ``init_noise_level`` (see `Take`).
        Raises `OSError` or `FlexAudioError` when it cannot be saved (then it is not added).
        """
        with self._lock:
            take = Take(
                len(self._takes) + 1,
                self,
                clip.reproducible_request(),
                clip.seed,
                clip.duration,
                dict(clip.timings),
                clip.offline,
                origin,
                click_to_audio=click_to_audio,
                **lineage,
            )
            clip.save(take.path)
            data = _read_regular(take.path)
            self._saved[take.number] = (len(data), hashlib.sha256(data).digest())
            self._takes.append(take)
        self._clips.put(take.number, clip)
        return take

    def clip(self, take: Take) -> Clip:
        """`take`'s clip: from memory, or read back from its file (and then held as the newest)."""
        return self._clips.get(take.number, lambda: self._read(take))

    def held(self) -> tuple[int, ...]:
        """The numbers of the takes whose samples are in memory, least recently used first."""
        return self._clips.keys()

    def _read(self, take: Take) -> Clip:
        # The file holds the request, seed and offline flag; the timings were kept by the take.
        return replace(Clip.load(take.path, data=self._saved_bytes(take)), timings=dict(take.timings))

    def _saved_bytes(self, take: Take) -> bytes:
        """The bytes of `take`'s file, checked to be those saved (`UnsafeStateError` if not)."""
        size, digest = self._saved[take.number]
        try:
            data = _read_regular(take.path, size)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"clip #{take.number}: {take.path} is gone (was the session closed?)"
            ) from None
        if hashlib.sha256(data).digest() != digest:
            raise UnsafeStateError(f"clip #{take.number}: {take.path} changed since it was saved")
        return data

    @property
    def takes(self) -> tuple[Take, ...]:
        with self._lock:
            return tuple(self._takes)

    def __len__(self) -> int:
        return len(self.takes)

    def get(self, number: int) -> Take:
        return self.takes[number - 1]

    def find(self, which: Any, side: str = "") -> Take:
        """The take `which` (a take or its number, as in History); `ValueError` naming the allowed
        numbers if it is not one of this session's (`side`, e.g. ``"A: "``, starts the message)."""
        count = len(self)
        if not count:
            raise ValueError("Make at least one clip first.")
        number = which.number if isinstance(which, Take) else which
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= count:
            raise ValueError(
                f"{side}{which!r} is not a clip of this session; allowed: clip numbers 1 to {count}"
            )
        return self.get(number)

    def save(self, take: Take, folder: str | os.PathLike, fmt: str = "wav") -> Path:
        """Save one take as WAV or FLAC in `folder` (request and seed in the file's metadata)."""
        fmt = fmt.lower().lstrip(".")
        path = Path(folder) / take.file_name(f".{fmt}")
        if fmt != "flac":
            return take.clip.save(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, self._saved_bytes(take))  # the session's file is that FLAC already

    def export(self, folder: str | os.PathLike) -> Path:
        """Save every take as FLAC in `folder` and write `manifest.jsonl`; return the manifest's path.

        The manifest has `AudioClient.generate_many`'s format, one line per clip: ``index``,
        ``status``, ``request`` (the body, with the seed used, so ``flexaudio batch`` can make the
        clip again), ``seed``, ``path`` (relative to `folder`), ``timings``, plus ``origin``,
        ``offline`` and the take's lineage (`Take.lineage`).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            ManifestLine(
                index,
                "ok",
                take.request.to_body() if take.request else None,
                seed=take.seed,
                path=self.save(take, folder, "flac").name,
                timings=take.timings,
                extra={"origin": take.origin, "offline": take.offline, **take.lineage()},
            )
            for index, take in enumerate(self.takes)
        ]
        return write_manifest(folder, lines)

    def close(self) -> None:
        """Remove the temporary folder of the takes (a folder given to the session is kept)."""
        if self._remove_folder is not None:
            self._remove_folder()


def _read_regular(path: Path, size: int | None = None) -> bytes:
    """The bytes of the regular file at `path` (of `size` bytes, when given), never through a symlink
    and never waiting on a FIFO; `UnsafeStateError` for anything else."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        handle = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeStateError(f"{path} is now a symlink: refusing to read a take through it") from None
        raise
    with os.fdopen(handle, "rb") as stream:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode) or size not in (None, info.st_size):
            raise UnsafeStateError(f"{path} is no longer the take saved there: refusing to read it")
        return stream.read(info.st_size)


def _hold(folder: str) -> int:
    """Lock a new takes folder as in use; the open descriptor holds the lock until it is closed."""
    handle, temporary = tempfile.mkstemp(dir=folder)
    fcntl.flock(handle, fcntl.LOCK_EX)
    os.replace(temporary, os.path.join(folder, IN_USE_NAME))  # appears already locked
    return handle


def _remove_held(folder: str, handle: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os.close(handle)


def _remove_stale_takes() -> None:
    """Remove the takes folders that no live session holds (left by a kernel that was killed).

    Only folders named like ours, owned by this user, and marked in use by a session that is gone
    (its lock on ``.in-use`` released): never one that a session holds, nor one without the mark.
    """
    for folder in Path(tempfile.gettempdir()).glob(f"{TAKES_PREFIX}*"):
        try:
            info = os.lstat(folder)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            handle = os.open(folder / IN_USE_NAME, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live session holds it
            os.close(handle)
            continue
        _remove_held(str(folder), handle)


def sweep_requests(base: GenerationRequest, parameter: str, values: str) -> list[GenerationRequest]:
    """`base` once per value in `values` (``"3, 7, 12"``), each validated; `InvalidParameters` if not."""
    kind = SWEEPABLE.get(parameter)
    if kind is None:
        raise InvalidParameters(
            f"cannot sweep {parameter!r}; choose one of {', '.join(SWEEPABLE)}",
            field="parameter",
            value=parameter,
            allowed=", ".join(SWEEPABLE),
        )
    words = [word for word in values.replace(";", ",").replace(" ", ",").split(",") if word]
    allowed = f"2 to {MAX_SWEEP_VALUES} values, each {ALLOWED[parameter]}"
    numbers = []
    for word in words:  # each value first, so a typo is named rather than counted
        try:
            numbers.append(kind(word))
        except ValueError:
            raise InvalidParameters(
                f"{parameter}: {word!r} is not {'an integer' if kind is int else 'a number'}; "
                f"allowed: {allowed}",
                field=parameter,
                value=word,
                allowed=allowed,
            ) from None
    if not 2 <= len(numbers) <= MAX_SWEEP_VALUES:
        got = f"{len(numbers)}: {values.strip()!r}" if numbers else "none"
        raise InvalidParameters(
            f"{parameter}: give {allowed} (got {got})", field=parameter, value=values, allowed=allowed
        )
    return [base.with_parameters(**{parameter: value}) for value in numbers]


def noise_level(level: Any) -> float:
    """`level` as a float if audio-to-audio can start there; `InvalidParameters` if not."""
    number = isinstance(level, int | float) and not isinstance(level, bool)
    if not (number and MIN_INIT_NOISE_LEVEL < level <= MAX_NOISE_LEVEL):
        allowed = f"more than {MIN_INIT_NOISE_LEVEL:g} up to {MAX_NOISE_LEVEL:g} (1 keeps the source's shape)"
        raise InvalidParameters(
            f"init_noise_level={level!r} is not allowed; allowed: {allowed}",
            field="init_noise_level",
            value=level,
            allowed=allowed,
        )
    return float(level)


class Job:
    """Run `work()` in a daemon thread; report through callbacks unless cancelled.

    `on_result(result)` or `on_error(exception)` runs in the worker thread when `work` ends;
    `on_tick(elapsed_seconds)` runs every `tick_seconds` meanwhile. After `cancel()` none of them
    runs again: the work itself is not interrupted (an HTTP request cannot be recalled), only its
    result is abandoned. Callbacks never overlap, so a late tick cannot overwrite the result.
    `result()` waits for the outcome: what `on_result` returned, or the error `on_error` was given.
    """

    def __init__(
        self,
        work: Callable[[], Any],
        *,
        on_result: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_tick: Callable[[float], None] | None = None,
        tick_seconds: float = 0.25,
        name: str = "flexaudio-explorer",
    ) -> None:
        self.work = work
        self.on_result = on_result
        self.on_error = on_error
        self.on_tick = on_tick
        self.tick_seconds = tick_seconds
        self.name = name
        self.started = 0.0
        self.cancelled = False
        self.outcome: Any = None  # what on_result returned (e.g. the take it added)
        self.error: BaseException | None = None  # what on_error was given
        self._finished = False
        self._delivered = False  # a callback ran: outcome or error is set
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._settled = threading.Event()  # delivered, or abandoned by cancel()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def running(self) -> bool:
        return not self._done.is_set() and not self.cancelled

    def start(self) -> Job:
        self.started = time.monotonic()
        threading.Thread(target=self._run, name=self.name, daemon=True).start()
        if self.on_tick:
            threading.Thread(target=self._tick, name=f"{self.name}-tick", daemon=True).start()
        return self

    def cancel(self) -> None:
        """Abandon the result: no callback runs after this returns."""
        with self._lock:
            self.cancelled = True
        self._settled.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the work and its callback are over; False on timeout."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """Wait until the outcome is shown; return what `on_result` returned, or raise the error.

        Raises `TimeoutError` if it is not settled within `timeout` seconds (the work goes on), and
        `concurrent.futures.CancelledError` once `cancel()` abandoned it (without waiting for the work).
        """
        if not self._settled.wait(timeout):
            raise TimeoutError(f"{self.name}: still running after {timeout:.0f} s")
        with self._lock:
            if not self._delivered:
                raise CancelledError(f"{self.name}: cancelled; its result was discarded")
            if self.error is not None:
                raise self.error
            return self.outcome

    def _run(self) -> None:
        try:
            try:
                result = self.work()
            except Exception as exc:
                self._report(self.on_error, exc)
            else:
                self._report(self.on_result, result)
        finally:
            self._done.set()
            self._settled.set()

    def _report(self, callback: Callable[[Any], Any], value: Any) -> None:
        with self._lock:
            self._finished = True
            if self.cancelled:
                return
            self._delivered = True
            if callback is self.on_error:
                self.error = value
            try:
                returned = callback(value)
            except Exception as exc:  # e.g. plotting failed: still say so in the widget
                if callback is self.on_error:
                    log.exception("the explorer could not show an error")
                else:
                    self.error = exc
                    try:
                        self.on_error(exc)
                    except Exception:
                        log.exception("the explorer could not show an error")
            else:
                if callback is self.on_result:
                    self.outcome = returned

    def _tick(self) -> None:
        while not self._done.wait(self.tick_seconds):
            with self._lock:
                if self._finished or self.cancelled:
                    return
                try:
                    self.on_tick(self.elapsed)
                except Exception:
                    log.exception("the explorer's progress display failed")
                    return
