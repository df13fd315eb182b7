"""The generation queue and per-step progress, on the offline model (real diffusers pipeline, CPU).

One run at a time, first come first served; a full queue refuses at once; a request whose
caller has gone is dropped while waiting and stopped between steps while running.
"""

from __future__ import annotations

import asyncio

import pytest

from flexaudio_helpers.errors import QueueFull
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.serving.pipeline import load_generator
from flexaudio_helpers.serving.queue import GenerationQueue

SHORT = GenerationRequest.build("a dog barking", audio_end_in_s=1.0, num_inference_steps=3, seed=5)
LONG = SHORT.with_parameters(num_inference_steps=1000)  # minutes on this CPU unless stopped


@pytest.fixture(scope="module")
def generator():
    return load_generator("offline", device="cpu")


class _Stop(Exception):
    """Raised from `progress`, as the queue does when the caller of a run has gone."""


def test_progress_reports_every_step(generator):
    calls: list[tuple[int, int]] = []
    generator.generate(SHORT, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_progress_can_stop_a_run_between_steps(generator):
    steps: list[int] = []

    def stop_after_the_first_step(done: int, total: int) -> None:
        steps.append(done)
        raise _Stop

    with pytest.raises(_Stop):
        generator.generate(LONG, progress=stop_after_the_first_step)
    assert steps == [1]


def _counting(generator, steps_run: list[int]):
    """`generator.generate`, recording how many steps each run took."""

    def generate(request, progress):
        steps_run.append(0)

        def count(done: int, total: int) -> None:
            steps_run[-1] = done
            progress(done, total)

        return generator.generate(request, progress=count)

    return generate


def test_requests_run_in_order_and_abandoned_ones_are_dropped_or_stopped(generator):
    """Four requests arrive together: the first is abandoned while running (it stops between
    steps), the third while waiting (it never runs); the others get their own audio in order."""
    steps_run: list[int] = []

    async def scenario():
        queue = GenerationQueue(_counting(generator, steps_run), max_waiting=8)
        arriving = (LONG, SHORT, SHORT.with_parameters(seed=6), SHORT.with_parameters(seed=7))
        tasks = [asyncio.create_task(queue.submit(request)) for request in arriving]
        while not steps_run or steps_run[0] == 0:  # the first run has begun its steps
            await asyncio.sleep(0.01)
        assert (queue.running, queue.waiting) == (True, 3)
        tasks[2].cancel()
        tasks[0].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return results, (queue.running, queue.waiting)

    (running, second, waiting, fourth), idle = asyncio.run(scenario())
    assert isinstance(running, asyncio.CancelledError) and isinstance(waiting, asyncio.CancelledError)
    assert steps_run[0] < 1000 and steps_run[1:] == [3, 3]  # the third never ran
    assert (second.audio.seed, fourth.audio.seed) == (5, 7)
    assert fourth.queue_seconds >= second.queue_seconds > 0
    assert idle == (False, 0)


def test_a_full_queue_refuses_at_once(generator):
    async def scenario():
        queue = GenerationQueue(generator.generate, max_waiting=1)
        running = asyncio.create_task(queue.submit(LONG))
        waiting = asyncio.create_task(queue.submit(SHORT))
        await asyncio.sleep(0.1)
        try:
            with pytest.raises(QueueFull) as refused:
                await queue.submit(SHORT)
        finally:
            waiting.cancel()
            running.cancel()
            await asyncio.gather(running, waiting, return_exceptions=True)
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.retry_after >= 1
    assert "queue is full" in str(refused)
