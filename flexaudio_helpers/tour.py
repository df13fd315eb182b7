"""What the tutorial notebooks share: the seed's three examples and finding the endpoint again.

Each notebook runs on its own in a fresh kernel. They meet only through the deployment's saved
state: notebook 02 serves the endpoint named `ENDPOINT_NAME`, later notebooks call
`find_or_serve()` to get it back (on this machine, it is served again when missing).
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EndpointNotFound, EndpointUnavailable, FlexAudioError
from .params import GenerationRequest
from .state import forget, state_dir, write_private

if TYPE_CHECKING:
    from .audio import Clip
    from .client import AudioClient
    from .deploy import Deployment, Endpoint
    from .serving.pipeline import AudioGenerator

ENDPOINT_NAME = "stable-audio-open"
HF_TOKEN_SECRET = "MY_HF_TOKEN"
HF_TOKEN_ENV = "HF_TOKEN"
CLIPS_DIR = Path("clips")


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


def hugging_face_token() -> str | None:
    """The Hugging Face token: ``HF_TOKEN``, else a ``.env`` file, else asked (hidden) when a person is here.

    Returns None when nobody can answer (e.g. under nbmake), so the notebook can skip the step.
    """
    from dotenv import dotenv_values

    token = os.environ.get(HF_TOKEN_ENV) or dotenv_values(".env").get(HF_TOKEN_ENV)
    if token:
        return token.strip()
    try:
        token = getpass.getpass("Hugging Face token (hidden): ")
    except Exception:  # no stdin here (IPython's StdinNotImplementedError, EOFError): nobody to ask
        return None
    return token.strip() or None


def find_or_serve(deployment: Deployment, name: str = ENDPOINT_NAME) -> Endpoint:
    """The endpoint notebook 02 served; on this machine it is served now if it is not running."""
    try:
        return deployment.endpoint(name)
    except (EndpointNotFound, EndpointUnavailable):
        if deployment.target != "local":
            raise FlexAudioError(
                f"no endpoint {name!r} is saved for {deployment.target}: run 02_serve_endpoint.ipynb "
                "first, or set INFERENCE_URL and INFERENCE_API_KEY"
            ) from None
    print(f"No local endpoint {name!r} is running: serving it now, as notebook 02 does.")
    deployment.serve(name, hf_token_secret=HF_TOKEN_SECRET)
    return deployment.wait_until_ready(name)


def write_env_file(endpoint: Endpoint) -> Path:
    """Save ``INFERENCE_URL``/``INFERENCE_API_KEY`` for shells in a private (0600) file; return its path."""
    text = (
        f"INFERENCE_URL={shlex.quote(endpoint.require_url())}\n"
        f"INFERENCE_API_KEY={shlex.quote(endpoint.api_key or '')}\n"
    )
    return write_private(state_dir() / "inference.env", text)


def generate_here(generator: AudioGenerator, request: GenerationRequest) -> Clip:
    """Run `request` in this process on a loaded generator, with a progress bar over the steps."""
    from tqdm.auto import tqdm

    from .audio import Clip

    started = time.perf_counter()
    with tqdm(desc="denoising", unit="step") as bar:

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        audio = generator.generate(request, progress=advance)
    timings = {"generation": audio.seconds, "request": time.perf_counter() - started}
    return Clip(audio.samples, audio.sample_rate, request, audio.seed, timings, generator.offline)


def forget_saved_state() -> list[str]:
    """Delete the files flexaudio saved (endpoints, API keys, local secrets, logs); return their paths.

    Only files this package wrote are removed, by name: anything else in the state folder stays,
    and the folder itself goes only when flexaudio created it and nothing else is left in it.
    Each removed file is printed, as a path relative to the state folder.
    """
    folder = state_dir()
    removed = forget(folder)
    print(f"Removed {len(removed)} saved file{'s' if len(removed) != 1 else ''} from {folder}:")
    for name in removed:
        print(f"  {name}")
    if folder.exists():
        print(f"Kept {folder}: it holds files flexaudio did not write, or flexaudio did not create it.")
    return removed
