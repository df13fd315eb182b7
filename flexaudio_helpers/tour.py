"""What the tutorial notebooks share: the seed's three examples and the steps around them.

Each notebook runs on its own in a fresh kernel. They meet only through the deployment's saved
state: notebook 02 serves the endpoint named `ENDPOINT_NAME`, later notebooks call
`find_or_serve()` (from `deploy`) to get it back (on this machine, it is served again when missing).
"""

from __future__ import annotations

import html
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .params import GenerationRequest

if TYPE_CHECKING:
    from IPython.display import HTML
    from matplotlib.figure import Figure

    from .audio import Clip
    from .client import AudioClient
    from .serving.pipeline import AudioGenerator

ENDPOINT_NAME = "stable-audio-open"
HF_TOKEN_SECRET = "MY_HF_TOKEN"
CLIPS_DIR = Path("clips")
NO_TOKEN_NOTE = (
    "No Hugging Face token: skipped. Without one, FlexAI cannot download the gated model and this\n"
    "machine cannot fetch the real weights, so the local tour uses the offline model (noise).\n"
    "Set HF_TOKEN (or put it in .env) and run this cell again whenever you like."
)


@dataclass(frozen=True)
class Example:
    """One of the seed tutorial's example requests, with the file name its curl command used."""

    title: str
    filename: str
    request: GenerationRequest


# The seed tutorial's three curl examples, parameter for parameter.
SEED_EXAMPLES = (
    Example(
        "Relaxing music",
        "relaxing_music.wav",
        GenerationRequest.build(
            "Relaxing piano music with soft ambient sounds, calm and peaceful",
            audio_end_in_s=10.0,
            num_inference_steps=200,
            guidance_scale=7.0,
            seed=42,
        ),
    ),
    Example(
        "Nature soundscape",
        "nature_sounds.wav",
        GenerationRequest.build(
            "Forest ambience with birds chirping and a gentle stream flowing",
            audio_end_in_s=15.0,
            num_inference_steps=200,
            guidance_scale=7.0,
            negative_prompt="distorted, low quality, muffled",
            seed=123,
        ),
    ),
    Example(
        "Electronic beat",
        "electronic_beat.wav",
        GenerationRequest.build(
            "Upbeat electronic music with synthesizers and energetic drums, 128 bpm",
            audio_end_in_s=20.0,
            num_inference_steps=200,
            guidance_scale=7.0,
            seed=456,
        ),
    ),
)


def run_example(client: AudioClient, example: Example) -> Clip:
    """Send one seed example: show its JSON body, generate, save it under `CLIPS_DIR`, report the time."""
    print(json.dumps(example.request.to_body(), indent=2))
    clip = client.generate(example.request)
    path = clip.save(CLIPS_DIR / example.filename)
    generation = clip.timings.get("generation", 0.0)
    print(f"{path}: {generation:.1f} s to generate, {clip.timings['request']:.1f} s in all")
    return clip


_generation_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flexaudio-generate")


def generate_here(generator: AudioGenerator, request: GenerationRequest) -> Clip:
    """Run `request` in this process on a loaded generator, with a progress bar over the steps.

    The clip's timings split the run: ``denoising`` (the steps, prompt encoding included) and
    ``decoding`` (the VAE turning latents into samples), besides ``generation`` and ``request``.
    """
    from tqdm.auto import tqdm

    from .audio import Clip

    steps = generator.resolve(request, seed=0).num_inference_steps
    started = time.perf_counter()
    last_step = started
    with tqdm(total=steps, desc="denoising", unit="step") as bar:

        def advance(done: int, total: int) -> None:
            nonlocal last_step
            last_step = time.perf_counter()
            bar.update(done - bar.n)

        # On a worker thread, as the endpoint runs it. On a busy 2-core machine the same generation
        # took 1.1 to 4 times longer on the main thread (bench/inprocess_vs_endpoint.py and
        # bench/RESULTS.md); on an idle machine the two are equal.
        audio = _generation_thread.submit(generator.generate, request, progress=advance).result()
    finished = time.perf_counter()
    timings = {
        "generation": audio.seconds,
        "denoising": last_step - started,
        "decoding": finished - last_step,
        "request": finished - started,
    }
    return Clip(audio.samples, audio.sample_rate, request, audio.seed, timings, generator.offline)


def timing_line(clip: Clip, generator: AudioGenerator) -> str:
    """What an in-process generation's time was spent on, and where it ran."""
    import torch

    steps = generator.resolve(clip.request, seed=0).num_inference_steps
    timings = clip.timings
    where = f"{generator.device}, {generator.options.describe().get('dtype', '')}"
    if generator.device == "cpu":
        where += f", {torch.get_num_threads()} CPU threads"
    return (
        f"{timings['request']:.1f} s for {clip.duration:.0f} s of audio: {steps} denoising steps in "
        f"{timings['denoising']:.1f} s ({1000 * timings['denoising'] / steps:.0f} ms each, prompt encoding "
        f"included), then the VAE decoded the {generator.max_seconds:.2f} s window in "
        f"{timings['decoding']:.1f} s and the clip was cut from it. Ran on {where}."
    )


# What a real model changes when each sweepable parameter changes (the offline one changes nothing
# audible: its weights are random).
WHAT_IT_CHANGES = {
    "guidance_scale": "low guidance (1) barely follows the prompt, around 7 it follows it closely, "
    "and far above that the sound turns harsh",
    "num_inference_steps": "few steps sound grainy and unfinished, 100 to 200 give clean detail",
    "seed": "each seed is a different take on the same prompt",
}


def show_comparison(clips: list[Clip], parameter: str) -> Figure:
    """Play each clip under the value of `parameter` that tells it apart, then plot them on one scale.

    On the offline model, says in one sentence why the panels look alike.
    """
    from IPython.display import HTML, display

    from .plots import plot_comparison

    label = parameter.removesuffix("_scale").replace("num_inference_steps", "steps").replace("_", " ")
    values = [clip.request.parameters.model_dump()[parameter] for clip in clips]
    labels = [f"{label} {value:g}" if isinstance(value, float) else f"{label} {value}" for value in values]
    for clip, text in zip(clips, labels, strict=True):
        display(HTML(clip.player_html(text)))
    if any(clip.offline for clip in clips):
        display(
            HTML(
                "<p><b>Offline model:</b> its random weights ignore what the prompt means, so these "
                f"panels look and sound alike. On the real model, {WHAT_IT_CHANGES.get(parameter, '')}.</p>"
            )
        )
    return plot_comparison(clips, titles=labels)


def manifest_table(manifest: str | os.PathLike) -> HTML:
    """A ``manifest.jsonl`` (from `generate_many`, `flexaudio batch` or the explorer's export) as a
    small table: one row a clip, times rounded for reading."""
    from IPython.display import HTML

    header = ("#", "status", "file", "prompt", "length", "steps", "guidance", "seed", "generated in")
    rows = []
    for line in Path(manifest).read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        request = entry.get("request") or {}
        parameters = request.get("parameters") or {}
        generation = (entry.get("timings") or {}).get("generation")
        prompt = str(request.get("inputs", ""))
        cells = (
            entry.get("index"),
            entry.get("status"),
            entry.get("path") or "",
            prompt if len(prompt) <= 40 else prompt[:39] + "…",
            f"{parameters['audio_end_in_s']:g} s" if "audio_end_in_s" in parameters else "",
            parameters.get("num_inference_steps", ""),
            f"{parameters['guidance_scale']:g}" if "guidance_scale" in parameters else "",
            entry.get("seed", ""),
            f"{generation:.1f} s" if isinstance(generation, int | float) else "",
        )
        rows.append("".join(f"<td style='text-align:left'>{html.escape(str(cell))}</td>" for cell in cells))
    head = "".join(f"<th style='text-align:left'>{name}</th>" for name in header)
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return HTML(f"<p>{html.escape(str(manifest))}</p><table><tr>{head}</tr>{body}</table>")
