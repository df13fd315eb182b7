"""The explorer's memory and its background work, kept apart from the widgets.

- `Take`: one clip made in the session, numbered, with where it came from (shown in a notebook as
  its player and a table of its parameters, seed and timings).
- `Session`: every take, saving one, and exporting them all with a replayable manifest.
- `Job`: a worker thread whose result can be abandoned (Cancel), with an elapsed-time tick, and
  whose outcome code can wait for (`Job.result`, like a `concurrent.futures.Future`).
- `sweep_requests`: one request per value of the swept parameter, validated before anything is sent.

Nothing here imports ipywidgets, so it can be used (and read) on its own.
"""

from __future__ import annotations

import html
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audio import Clip
from ..batch import ManifestLine, write_manifest
from ..errors import InvalidParameters
from ..params import ALLOWED, GenerationRequest

log = logging.getLogger(__name__)

# The parameters a sweep can vary, and how to read the values typed for them.
SWEEPABLE = {"guidance_scale": float, "num_inference_steps": int, "seed": int}
MAX_SWEEP_VALUES = 8


@dataclass(frozen=True, eq=False)
class Take:
    """One clip of the session: `number` counts from 1, `origin` says what made it."""

    number: int
    clip: Clip
    origin: str = "generate"
    made_at: float = field(default_factory=time.time)
    click_to_audio: float | None = None  # seconds from the click to the player being shown

    @property
    def request(self) -> GenerationRequest | None:
        """The request with the seed actually used: sending it again remakes this clip."""
        return self.clip.reproducible_request()

    def parameters(self) -> dict[str, Any]:
        request = self.request
        return request.parameters.model_dump(exclude_none=True) if request else {}

    def short_parameters(self) -> str:
        """E.g. ``10.0 s · 200 steps · guidance 7 · seed 42``."""
        values = self.parameters()
        parts = [f"{self.clip.duration:.1f} s"]
        if "num_inference_steps" in values:
            parts.append(f"{values['num_inference_steps']} steps")
        if "guidance_scale" in values:
            parts.append(f"guidance {values['guidance_scale']:g}")
        parts.append(f"seed {self.clip.seed}")
        return " · ".join(parts)

    def label(self) -> str:
        """One line for the history list: prompt, parameters, and tempo, loudness and brightness."""
        prompt = self.clip.prompt or "(no prompt)"
        prompt = prompt if len(prompt) <= 40 else prompt[:37] + "..."
        return f"#{self.number} {prompt} · {self.short_parameters()} · {self.measured()} ({self.origin})"

    def measured(self) -> str:
        """E.g. ``128 bpm · -14.2 LUFS · 2,310 Hz`` (analysed once per clip, then remembered)."""
        from ..analysis import headline  # imported on use: the analysis loads librosa

        return headline(self.clip)

    def file_name(self, suffix: str = ".flac") -> str:
        return f"clip-{self.number:03d}-seed{self.clip.seed}{suffix}"

    def details_html(self) -> str:
        """The parameters, seed and timings, as a small HTML table."""
        clip = self.clip
        rows = [("prompt", clip.prompt or "")]
        rows += [(name, value) for name, value in self.parameters().items() if name != "seed"]
        rows.append(("seed used", clip.seed))
        timings = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(clip.timings.items()))
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
    """Every take made in one explorer session, in order (thread-safe)."""

    def __init__(self) -> None:
        self._takes: list[Take] = []
        self._lock = threading.Lock()

    def add(self, clip: Clip, origin: str = "generate", click_to_audio: float | None = None) -> Take:
        with self._lock:
            take = Take(len(self._takes) + 1, clip, origin, click_to_audio=click_to_audio)
            self._takes.append(take)
        return take

    @property
    def takes(self) -> tuple[Take, ...]:
        with self._lock:
            return tuple(self._takes)

    def __len__(self) -> int:
        return len(self.takes)

    def get(self, number: int) -> Take:
        return self.takes[number - 1]

    @staticmethod
    def save(take: Take, folder: str | os.PathLike, fmt: str = "wav") -> Path:
        """Save one take as WAV or FLAC in `folder` (request and seed in the file's metadata)."""
        return take.clip.save(Path(folder) / take.file_name(f".{fmt.lower().lstrip('.')}"))

    def export(self, folder: str | os.PathLike) -> Path:
        """Save every take as FLAC in `folder` and write `manifest.jsonl`; return the manifest's path.

        The manifest has `AudioClient.generate_many`'s format, one line per clip: ``index``,
        ``status``, ``request`` (the body, with the seed used, so ``flexaudio batch`` can make the
        clip again), ``seed``, ``path`` (relative to `folder`), ``timings``, plus ``origin`` and
        ``offline``.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            ManifestLine(
                index,
                "ok",
                take.request.to_body() if take.request else None,
                seed=take.clip.seed,
                path=self.save(take, folder, "flac").name,
                timings=take.clip.timings,
                extra={"origin": take.origin, "offline": take.clip.offline},
            )
            for index, take in enumerate(self.takes)
        ]
        return write_manifest(folder, lines)


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
