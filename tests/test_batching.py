"""Request batching on the offline model (real diffusers classes, fp32 on the CPU).

Each request in a batch must get the audio it would get alone: same seed, duration, prompt,
negative prompt and guidance scale, same samples (fp32: equal to float rounding of batched
matrix products). Generations are kept few and short (1-2 s clips, 2-3 steps).
"""

from __future__ import annotations

import asyncio
import io
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import start_server, stop_server

from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.serving.offline_model import build_offline_pipeline
from flexaudio_helpers.serving.pipeline import load_generator
from flexaudio_helpers.serving.queue import GenerationQueue, QueueFull

TOLERANCE = 1e-5  # fp32; the audio peaks around 0.5

FIRST = GenerationRequest.build(
    "a dog barking", audio_end_in_s=1.0, num_inference_steps=3, seed=5, negative_prompt="low quality"
)
# Mixed durations (one with a start offset), seeds, guidance scales and negative prompts.
BATCH = [
    FIRST,
    GenerationRequest.build(
        "rain on a roof",
        audio_start_in_s=0.5,
        audio_end_in_s=2.0,
        num_inference_steps=3,
        seed=7,
        guidance_scale=3.0,
    ),
    GenerationRequest.build("rain on a roof", audio_end_in_s=0.7, num_inference_steps=3, seed=9),
]


@pytest.fixture(scope="module")
def generator():
    return load_generator("offline", device="cpu")


@pytest.fixture(scope="module")
def alone(generator):
    """Each request of BATCH generated on its own, with the steps reported by `progress`."""
    results, steps = [], []
    for request in BATCH:
        calls: list[tuple[int, int]] = []
        results.append(
            generator.generate(request, progress=lambda done, total, calls=calls: calls.append((done, total)))
        )
        steps.append(calls)
    return results, steps


def test_one_request_equals_the_diffusers_pipeline(generator, alone):
    reference = build_offline_pipeline()
    reference.set_progress_bar_config(disable=True)
    expected = reference(
        FIRST.inputs,
        audio_end_in_s=1.0,
        num_inference_steps=3,
        negative_prompt="low quality",
        generator=torch.Generator("cpu").manual_seed(5),
    ).audios[0]
    np.testing.assert_array_equal(alone[0][0].samples, expected.numpy())


def test_progress_reports_every_step(alone):
    _, steps = alone
    assert steps[0] == [(1, 3), (2, 3), (3, 3)]


class _Stop(Exception):
    """Raised from `progress`, as the queue does when every caller of a run has gone."""


@pytest.mark.parametrize("requests", [BATCH[:1], BATCH[:2]], ids=["one request", "a batch"])
def test_progress_can_stop_a_run_between_steps(generator, requests):
    """A single request (the pipeline's own call) and a batch (`denoise_batch`) both stop at the
    first step whose `progress` raises, and the exception reaches the caller."""
    steps: list[int] = []

    def stop_after_the_first_step(done: int, total: int) -> None:
        steps.append(done)
        raise _Stop

    long = [request.with_parameters(num_inference_steps=500) for request in requests]
    with pytest.raises(_Stop):
        generator.generate_batch(long, progress=stop_after_the_first_step)
    assert steps == [1]


def test_a_batch_gives_each_request_its_own_audio(generator, alone):
    singles, _ = alone
    batch = generator.generate_batch(BATCH)
    assert [clip.batch_size for clip in batch] == [3, 3, 3]
    assert [clip.seed for clip in batch] == [5, 7, 9]
    # Lengths are int(seconds * rate), as diffusers crops.
    assert [clip.samples.shape[1] for clip in batch] == [44_100, 66_150, 30_869]
    for single, batched in zip(singles, batch, strict=True):
        assert single.samples.shape == batched.samples.shape
        assert np.abs(single.samples - batched.samples).max() < TOLERANCE
    # Same prompt, other seed and duration: different audio (the rows did not get mixed up).
    overlap = batch[2].samples.shape[1]
    assert np.abs(batch[1].samples[:, :overlap] - batch[2].samples).max() > 0.01


def test_an_unguided_batch_matches_too(generator):
    requests = [
        GenerationRequest.build(
            prompt, audio_end_in_s=1.0, num_inference_steps=2, guidance_scale=1.0, seed=seed
        )
        for prompt, seed in (("wind", 1), ("waves", 2))
    ]
    batch = generator.generate_batch(requests)
    for request, batched in zip(requests, batch, strict=True):
        assert np.abs(generator.generate(request).samples - batched.samples).max() < TOLERANCE


def test_incompatible_requests_are_refused_as_one_batch(generator):
    other_steps = FIRST.with_parameters(num_inference_steps=4)
    unguided = FIRST.with_parameters(guidance_scale=1.0)
    assert generator.batch_key(FIRST) == generator.batch_key(BATCH[1])  # guidance 7 and 3: both on
    assert generator.batch_key(FIRST) != generator.batch_key(other_steps)
    assert generator.batch_key(FIRST) != generator.batch_key(unguided)
    with pytest.raises(ValueError, match="same steps and guidance"):
        generator.generate_batch([FIRST, other_steps])


def test_the_queue_batches_compatible_waiting_requests(generator):
    """Four requests arrive together; one is abandoned, one needs other steps."""
    odd = FIRST.with_parameters(num_inference_steps=2)

    async def scenario():
        queue = GenerationQueue(
            generator.generate_batch, max_waiting=8, max_batch=4, batch_key=generator.batch_key
        )
        queue.start()
        try:
            arriving = (BATCH[0], odd, BATCH[1], BATCH[2])
            tasks = [asyncio.create_task(queue.submit(request)) for request in arriving]
            await asyncio.sleep(0)  # all four are now waiting
            tasks[3].cancel()  # its client went away before the run started
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await queue.stop()

    first, odd_result, third, abandoned = asyncio.run(scenario())
    assert isinstance(abandoned, asyncio.CancelledError)
    assert (first.audio.batch_size, third.audio.batch_size) == (2, 2)
    assert (first.audio.seed, third.audio.seed) == (5, 7)
    assert odd_result.audio.batch_size == 1
    assert odd_result.queue_seconds >= first.queue_seconds  # it waited for the batch ahead of it


def test_a_full_queue_refuses_at_once(generator):
    async def scenario():
        queue = GenerationQueue(
            generator.generate_batch, max_waiting=1, max_batch=4, batch_key=generator.batch_key
        )
        queue.start()
        try:
            waiting = asyncio.create_task(queue.submit(FIRST))
            await asyncio.sleep(0)
            with pytest.raises(QueueFull) as refused:
                await queue.submit(BATCH[1])
            waiting.cancel()
            return refused.value
        finally:
            await queue.stop()

    refused = asyncio.run(scenario())
    assert refused.retry_after >= 1


def test_the_endpoint_batches_requests_that_wait_together(tmp_path, generator):
    """A real server with ``--max-batch 2``: while a first request runs, two more arrive and
    share the next run (same X-Generation-Seconds), each with its own seed and audio."""
    server = start_server(tmp_path, "--max-batch", "2", "--dtype", "float32")
    bodies = [BATCH[0].to_body(), BATCH[1].to_body(), BATCH[2].to_body()]

    def post(body):
        return httpx.post(
            f"{server.url}/v1/audios/generations", json=body, headers=server.headers(), timeout=120
        )

    try:
        speed = httpx.get(f"{server.url}/v1/models").json()["data"][0]["speed"]
        assert (speed["max_batch"], speed["dtype"]) == (2, "float32")
        with ThreadPoolExecutor(max_workers=3) as pool:
            first = pool.submit(post, bodies[0])
            time.sleep(0.5)  # the first request is now running (a run takes seconds here)
            second, third = pool.submit(post, bodies[1]), pool.submit(post, bodies[2])
            responses = [first.result(), second.result(), third.result()]
    finally:
        stop_server(server)
    assert [response.status_code for response in responses] == [200, 200, 200]
    assert [response.headers["x-seed"] for response in responses] == ["5", "7", "9"]
    seconds = [response.headers["x-generation-seconds"] for response in responses]
    assert seconds[1] == seconds[2] != seconds[0]
    # The batched third request's WAV is its solo audio, to 16-bit rounding.
    samples, _ = sf.read(io.BytesIO(responses[2].content), dtype="float32")
    alone = np.clip(generator.generate(BATCH[2]).samples, -1, 1).T
    assert samples.shape == alone.shape
    assert np.abs(samples - alone).max() <= 1.5 / 32768
