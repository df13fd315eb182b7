"""A bounded queue in front of the device: one run at a time, a few requests waiting.

Requests past the bound are refused at once (the endpoint answers 503 with Retry-After)
instead of piling up until every client times out. A waiting request whose client gave up
is skipped, and a running one whose clients have all gone stops at the next denoising step,
so a disconnect never blocks the requests behind it.

Batching: when the device frees up, the worker takes the oldest waiting request plus the
next waiting requests with the same batch key (same steps, guidance on/off), up to
`max_batch`, and runs them as one batch; incompatible requests keep their place in line.
With `max_batch=1` this is plain one-at-a-time first-in-first-out. If a batch fails as a
whole, each of its requests is retried alone, so one request's error reaches only its caller.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from ..params import GenerationRequest
from .pipeline import GeneratedAudio

# generate_batch(requests, progress): progress(done, total) is called after each denoising step.
GenerateBatch = Callable[[Sequence[GenerationRequest], Callable[[int, int], None]], list[GeneratedAudio]]


class _Abandoned(Exception):
    """Every caller of a running batch has gone: raised between steps to stop the run."""


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
    key: Hashable
    future: asyncio.Future
    enqueued_at: float


class GenerationQueue:
    """Runs submitted requests in a worker thread, one run (of up to `max_batch` requests) at a time.

    `generate_batch` takes a list of requests with equal `batch_key` and returns one result each.
    `batch_window_s` is how long the worker waits for companions before starting a batch that is
    not yet full (only when `max_batch` > 1): a short wait lets requests sent together share a run.
    """

    def __init__(
        self,
        generate_batch: GenerateBatch,
        *,
        max_waiting: int = 8,
        max_batch: int = 1,
        batch_key: Callable[[GenerationRequest], Hashable] = lambda request: None,
        batch_window_s: float = 0.02,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._generate_batch = generate_batch
        self.max_waiting = max_waiting
        self.max_batch = max_batch
        self._batch_key = batch_key
        self.batch_window_s = batch_window_s
        self._jobs: deque[_Job] = deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._recent_seconds = 1.0  # running estimate of one run, for Retry-After
        self.running = False

    @property
    def waiting(self) -> int:
        return sum(not job.future.done() for job in self._jobs)

    def start(self) -> None:
        self._arrived = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def submit(self, request: GenerationRequest) -> QueuedResult:
        """Wait for this request's audio; raises `QueueFull` when there is no room.

        The batch key is computed here, so a request the model cannot take fails at once.
        """
        waiting = self.waiting
        if waiting >= self.max_waiting:
            runs_ahead = math.ceil(waiting / self.max_batch) + int(self.running)
            raise QueueFull(max(1, math.ceil(runs_ahead * self._recent_seconds)))
        key = self._batch_key(request)
        job = _Job(request, key, asyncio.get_running_loop().create_future(), time.perf_counter())
        self._jobs.append(job)
        self._arrived.set()
        # If our caller is cancelled (client gone), the future is cancelled and skipped.
        return await job.future

    def _take_batch(self) -> list[_Job]:
        """The oldest live job plus the next live jobs with its key, removed from the line."""
        while self._jobs and self._jobs[0].future.done():  # abandoned while waiting
            self._jobs.popleft()
        if not self._jobs:
            return []
        first = self._jobs.popleft()
        batch = [first]
        for job in list(self._jobs):
            if len(batch) == self.max_batch:
                break
            if job.future.done():
                self._jobs.remove(job)
            elif job.key == first.key:
                self._jobs.remove(job)
                batch.append(job)
        return batch

    async def _next_batch(self) -> list[_Job]:
        while not self.waiting:
            self._arrived.clear()
            await self._arrived.wait()
        if self.max_batch > 1 and self.waiting < self.max_batch and self.batch_window_s > 0:
            await asyncio.sleep(self.batch_window_s)
        return self._take_batch()

    async def _work(self) -> None:
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            started = time.perf_counter()
            self.running = True
            try:
                await self._run(batch, started)
            finally:
                self.running = False
            self._recent_seconds = 0.7 * self._recent_seconds + 0.3 * (time.perf_counter() - started)

    async def _run(self, batch: list[_Job], started: float) -> None:
        def stop_if_abandoned(done: int, total: int) -> None:
            # In the worker thread, between steps. A future is cancelled when its client leaves.
            if all(job.future.done() for job in batch):
                raise _Abandoned

        try:
            results = await asyncio.to_thread(
                self._generate_batch, [job.request for job in batch], stop_if_abandoned
            )
        except _Abandoned:  # nobody is waiting for this audio: the next run starts now
            return
        except Exception as exc:  # reported to the callers; the worker goes on
            if len(batch) == 1:
                _settle(batch[0], exception=exc)
                return
            for job in batch:  # find out whose request it was: retry each alone
                if not job.future.done():
                    await self._run([job], started)
            return
        for job, audio in zip(batch, results, strict=True):
            _settle(job, result=QueuedResult(audio, started - job.enqueued_at))


def _settle(job: _Job, *, result: QueuedResult | None = None, exception: Exception | None = None) -> None:
    if job.future.done():  # the caller gave up while its batch ran
        return
    if exception is not None:
        job.future.set_exception(exception)
    else:
        job.future.set_result(result)
