"""A bounded queue in front of the device: one generation runs at a time, a few wait.

Requests past the bound are refused at once (the endpoint answers 503 with Retry-After)
instead of piling up until every client times out. A waiting request whose client gave up
is skipped, so a disconnect never blocks the requests behind it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..params import GenerationRequest
from .pipeline import GeneratedAudio


class QueueFull(Exception):
    """No room left in the queue; `retry_after` is a fair guess in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the generation queue is full; retry in about {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class QueuedResult:
    audio: GeneratedAudio
    queue_seconds: float


@dataclass
class _Job:
    request: GenerationRequest
    future: asyncio.Future
    enqueued_at: float


class GenerationQueue:
    """Runs `generate` for submitted requests one at a time, in a worker thread."""

    def __init__(self, generate: Callable[[GenerationRequest], GeneratedAudio], max_waiting: int = 8) -> None:
        self._generate = generate
        self.max_waiting = max_waiting
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._recent_seconds = 1.0  # running estimate of one generation, for Retry-After
        self.running = False

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def submit(self, request: GenerationRequest) -> QueuedResult:
        """Wait for this request's audio; raises `QueueFull` when there is no room."""
        if self.waiting >= self.max_waiting:
            ahead = self.waiting + int(self.running)
            raise QueueFull(max(1, math.ceil(ahead * self._recent_seconds)))
        job = _Job(request, asyncio.get_running_loop().create_future(), time.perf_counter())
        self._jobs.put_nowait(job)
        # If our caller is cancelled (client gone), the future is cancelled and skipped.
        return await job.future

    async def _work(self) -> None:
        while True:
            job = await self._jobs.get()
            if job.future.done():  # abandoned while waiting
                continue
            queue_seconds = time.perf_counter() - job.enqueued_at
            self.running = True
            try:
                audio = await asyncio.to_thread(self._generate, job.request)
            except Exception as exc:  # reported to that request's caller, the worker goes on
                if not job.future.done():
                    job.future.set_exception(exc)
                continue
            finally:
                self.running = False
            self._recent_seconds = 0.7 * self._recent_seconds + 0.3 * audio.seconds
            if not job.future.done():
                job.future.set_result(QueuedResult(audio, queue_seconds))
