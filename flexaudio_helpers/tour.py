"""The seed tutorial's three example requests, as data; and, until they move, finding the endpoint again.

The notebooks write the examples out as literal `client.generate(...)` calls; `SEED_EXAMPLES` keeps
the same values for tests and benchmarks. Notebook 02 serves the endpoint named `ENDPOINT_NAME`;
later notebooks call `find_or_serve()` to get it back (on this machine, it is served again when
missing).
"""

from __future__ import annotations

import getpass
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EndpointNotFound, EndpointUnavailable, FlexAudioError
from .params import GenerationRequest
from .state import forget, state_dir, write_private

if TYPE_CHECKING:
    from .deploy import Deployment, Endpoint

ENDPOINT_NAME = "stable-audio-open"
HF_TOKEN_SECRET = "MY_HF_TOKEN"
HF_TOKEN_ENV = "HF_TOKEN"
TOKEN_PROMPT = "Hugging Face token (typing stays hidden; press Enter to skip): "


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


def hugging_face_token() -> str | None:
    """The Hugging Face token: ``HF_TOKEN``, else a ``.env`` file, else asked (hidden) when a person is here.

    Returns None when the person presses Enter, or when nobody can answer (e.g. under nbmake), so
    the notebook can skip the step.
    """
    from dotenv import dotenv_values

    token = os.environ.get(HF_TOKEN_ENV) or dotenv_values(".env").get(HF_TOKEN_ENV)
    if token:
        return token.strip()
    try:
        token = getpass.getpass(TOKEN_PROMPT)
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
