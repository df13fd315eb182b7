"""Generating in this Python process: a request on a loaded `AudioGenerator`, returned as a `Clip`.

The endpoint runs the same generator in its own process; notebook 06 runs it here, with a
progress bar over the denoising steps and the time split into denoising and VAE decoding.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .inputs import as_request

if TYPE_CHECKING:
    from .audio import Clip
    from .serving.pipeline import AudioGenerator

_generation_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flexaudio-generate")


def generate_here(generator: AudioGenerator, prompt_or_request: Any, /, **parameters: Any) -> Clip:
    """Generate one clip in this process on `generator` (from `load_generator`), with a step bar.

    Takes what `AudioClient.generate` takes: a prompt with keyword parameters, a body dict or a
    `GenerationRequest`. The clip's ``timings`` split the run: ``denoising`` (every step, the
    prompt encoding included) and ``decoding`` (the VAE turning the latents into samples, always
    for the model's whole 47.55 s window), besides ``generation`` and ``request``.

    Raises `InvalidParameters` (naming the field) for an invalid request.

    It runs on a worker thread, as the endpoint does. On a CPU, anything computing at the same
    moment (a sweep in another kernel, a request to the endpoint) competes for the same cores, and
    the same request can then take several times longer: see the README's Troubleshooting.
    """
    from tqdm.auto import tqdm

    from .audio import Clip

    request = as_request(prompt_or_request, **parameters)
    steps = generator.resolve(request, seed=0).num_inference_steps
    started = time.perf_counter()
    last_step = started
    with tqdm(total=steps, desc="denoising", unit="step") as bar:

        def advance(done: int, total: int) -> None:
            nonlocal last_step
            last_step = time.perf_counter()
            bar.update(done - bar.n)

        # On a busy 2-core machine the same generation took 1.1 to 4 times longer on the main
        # thread (bench/inprocess_vs_endpoint.py and bench/RESULTS.md); on an idle one, the same.
        audio = _generation_thread.submit(generator.generate, request, progress=advance).result()
    finished = time.perf_counter()
    timings = {
        "generation": audio.seconds,
        "denoising": last_step - started,
        "decoding": finished - last_step,
        "request": finished - started,
    }
    return Clip(audio.samples, audio.sample_rate, request, audio.seed, timings, generator.offline)
