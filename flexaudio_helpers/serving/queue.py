"""A bounded queue in front of the device: one run at a time, a few requests waiting.

Requests past the bound are refused at once (the endpoint answers 503 with Retry-After)
instead of piling up until every client times out. Requests run first come, first served. A
waiting request whose client gave up leaves the line, and a running one whose client has gone
stops at the next denoising step, so a disconnect never blocks the requests behind it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import QueueFull
from ..params import GenerationRequest
from .pipeline import GeneratedAudio

# generate(request, progress, **options): progress(done, total) is called after each denoising
# step; options are `AudioGenerator.generate`'s (the audio-to-audio source).
Generate = Callable[..., GeneratedAudio]


class _Abandoned(Exception):
    """The caller of a running request has gone: raised between steps to stop the run."""


@dataclass(frozen=True)
class QueuedResult:
    audio: GeneratedAudio
    queue_seconds: float


class GenerationQueue:
    """Runs submitted requests one at a time in a worker thread, at most `max_waiting` waiting."""

    def __init__(self, generate: Generate, *, max_waiting: int = 8) -> None:
        self._generate = generate
        self.max_waiting = max_waiting
        self.waiting = 0
        self.running = False
        self._turn = asyncio.Lock()  # first come, first served; a cancelled waiter leaves the line
        self._recent_seconds = 1.0  # running estimate of one run, for Retry-After

    async def submit(self, request: GenerationRequest, **options: Any) -> QueuedResult:
        """Wait for this request's audio (`options` go to `generate`); raises `QueueFull` when
        there is no room.

        Cancel the awaiting task when the client goes: a waiting request is dropped, a running
        one stops at its next step (this returns once it has).
        """
        if self.waiting >= self.max_waiting:
            runs_ahead = self.waiting + int(self.running)
            raise QueueFull(max(1, math.ceil(runs_ahead * self._recent_seconds)))
        enqueued_at = time.perf_counter()
        self.waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self.waiting -= 1
        started = time.perf_counter()
        self.running = True
        try:
            return QueuedResult(await self._run(request, options), started - enqueued_at)
        finally:
            self.running = False
            self._turn.release()
            self._recent_seconds = 0.7 * self._recent_seconds + 0.3 * (time.perf_counter() - started)

    async def _run(self, request: GenerationRequest, options: dict[str, Any]) -> GeneratedAudio:
        gone = threading.Event()

        def stop_if_abandoned(done: int, total: int) -> None:
            if gone.is_set():  # in the worker thread, between steps
                raise _Abandoned

        run = asyncio.ensure_future(asyncio.to_thread(self._generate, request, stop_if_abandoned, **options))
        try:
            return await asyncio.shield(run)
        except asyncio.CancelledError:
            gone.set()
            # The device is free only once the thread has stopped: wait for it, then go.
            await asyncio.gather(run, return_exceptions=True)
            raise
