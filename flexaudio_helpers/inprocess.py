"""Generating in this Python process: a request on a loaded `AudioGenerator`, returned as a `Clip`.

The endpoint runs the same generator in its own process; notebook 06 runs it here, with a
progress bar over the denoising steps and the time split into denoising and VAE decoding:
`generate_here` for one clip (also audio-to-audio), `variations_here` for several takes of one
request in one pipeline call.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from .inputs import as_request

if TYPE_CHECKING:
    from .audio import Clip
    from .serving.pipeline import AudioGenerator

# Runs expected to take longer than this say so before they start (on MPS, 200 steps take minutes).
LONG_RUN_SECONDS = 60.0
_generation_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flexaudio-generate")


def generate_here(
    generator: AudioGenerator,
    prompt_or_request: Any,
    /,
    *,
    init_audio: Any = None,
    init_noise_level: float | None = None,
    **parameters: Any,
) -> Clip:
    """Generate one clip in this process on `generator` (from `load_generator`), with a step bar.

    Takes what `AudioClient.generate` takes: a prompt with keyword parameters, a body dict or a
    `GenerationRequest`, and for audio-to-audio `init_audio` (a `Clip`, a file path or a
    ``(samples, rate)`` pair) with `init_noise_level` (above 0.3 up to 500, default 1.0); the
    clip's request records the level, not the audio. The clip's ``timings`` split the run:
    ``denoising`` (every step, the prompt encoding included) and ``decoding`` (the VAE turning
    the latents into samples, always for the model's whole 47.55 s window), besides
    ``generation`` and ``request``.

    Raises `InvalidParameters` (naming the field) for an invalid request or source.

    It runs on a worker thread, as the endpoint does. On a CPU, anything computing at the same
    moment (a sweep in another kernel, a request to the endpoint) competes for the same cores, and
    the same request can then take several times longer: see docs/troubleshooting.md.
    """
    return _run(generator, prompt_or_request, None, init_audio, init_noise_level, parameters)[0]


def variations_here(
    generator: AudioGenerator, prompt_or_request: Any, count: int, /, **parameters: Any
) -> list[Clip]:
    """`count` (1 to 8) clips of one request in one pipeline call; clip k has seed base + k.

    The base is the request's seed, else one drawn (clip 0's seed). Takes what `generate_here`
    takes (``init_audio`` and ``init_noise_level`` included); the timings are the whole call's.
    Each clip records its seed: alone, that seed gives the same samples in bf16, and within 2e-8
    in fp32 (batched matrix products round differently; bench/variations.py).
    """
    source = parameters.pop("init_audio", None)
    level = parameters.pop("init_noise_level", None)
    return _run(generator, prompt_or_request, count, source, level, parameters)


def _run(
    generator: AudioGenerator,
    prompt_or_request: Any,
    count: int | None,
    source: Any,
    level: float | None,
    parameters: dict[str, Any],
) -> list[Clip]:
    from tqdm.auto import tqdm

    from .audio import Clip

    if level is not None:
        parameters = {**parameters, "init_noise_level": level}
    request = as_request(prompt_or_request, **parameters).for_source(source is not None)
    steps = generator.resolve(request, seed=0).num_inference_steps
    expected = generator.expected_seconds(request, count or 1)
    if expected is not None and expected > LONG_RUN_SECONDS:
        print(
            f"Expected: about {expected / 60:.1f} min on {generator.device} "
            f"({generator.seconds_per_step:.2f} s per step, as its last run measured)."
        )
    started = time.perf_counter()
    last_step = started
    with tqdm(total=steps, desc="denoising", unit="step") as bar:

        def advance(done: int, total: int) -> None:
            nonlocal last_step
            last_step = time.perf_counter()
            bar.update(done - bar.n)

        # On a busy 2-core machine the same generation took 1.1 to 4 times longer on the main
        # thread (bench/inprocess_vs_endpoint.py and bench/RESULTS.md); on an idle one, the same.
        run = partial(generator.variations, request, count or 1, progress=advance, source=source)
        takes = _generation_thread.submit(run).result()
    finished = time.perf_counter()
    timings = {
        "generation": takes[0].seconds,
        "denoising": last_step - started,
        "decoding": finished - last_step,
        "request": finished - started,
    }
    return [  # variations' requests name each take's seed: any one replays alone
        Clip(
            take.samples,
            take.sample_rate,
            request if count is None else request.with_parameters(seed=take.seed),
            take.seed,
            timings,
            generator.offline,
        )
        for take in takes
    ]
