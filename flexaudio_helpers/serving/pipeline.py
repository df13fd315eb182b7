"""Loading Stable Audio Open (real or offline) and turning a request into audio.

`load_generator("stabilityai/stable-audio-open-1.0")` loads the real weights (gated on the
Hugging Face hub: set ``HF_TOKEN``), a local diffusers folder loads the same way, and
`load_generator("offline")` builds the offline model in code with no network.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelLoadError
from ..params import GenerationParameters, GenerationRequest
from .offline_model import OFFLINE_MODEL_NAME, OFFLINE_NOTICE, build_offline_pipeline, is_offline_folder

log = logging.getLogger(__name__)

# torchsde's Brownian interval warns on every run about float rounding at the interval ends
# (harmless, see diffusers #13274): keep it out of the server's log.
warnings.filterwarnings("ignore", message=r"Should have t[ab]", category=UserWarning)

# The pipeline's own defaults, applied here so the response can report what was used.
DEFAULT_STEPS = 100
DEFAULT_GUIDANCE = 7.0
RANDOM_SEED_LIMIT = 2**31  # drawn seeds stay small enough for JavaScript and spreadsheets


@dataclass(frozen=True)
class GeneratedAudio:
    """One generation: float32 samples, channels first, and how they were made."""

    samples: np.ndarray
    sample_rate: int
    seed: int
    seconds: float


def pick_device() -> str:
    """The best device here: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str) -> torch.dtype:
    """Half precision on GPUs (the diffusers recipe uses fp16), fp32 on the CPU."""
    return torch.float16 if device in ("cuda", "mps") else torch.float32


class AudioGenerator:
    """A loaded `StableAudioPipeline` plus the facts the endpoint reports about it."""

    def __init__(self, pipeline: Any, *, model_name: str, offline: bool, device: str) -> None:
        self.pipeline = pipeline
        self.model_name = model_name
        self.offline = offline
        self.device = device
        pipeline.set_progress_bar_config(disable=True)

    @property
    def sample_rate(self) -> int:
        return int(self.pipeline.vae.config.sampling_rate)

    @property
    def channels(self) -> int:
        return int(self.pipeline.vae.config.audio_channels)

    @property
    def max_seconds(self) -> float:
        """Longest clip the model can make: latent frames x VAE hop / sample rate."""
        return self.pipeline.transformer.config.sample_size * self.pipeline.vae.hop_length / self.sample_rate

    def describe(self) -> dict[str, Any]:
        """The model's facts, as `/v1/models` reports them."""
        facts = {
            "id": self.model_name,
            "object": "model",
            "task": "text-to-audio",
            "offline": self.offline,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "max_audio_seconds": round(self.max_seconds, 4),
            "device": self.device,
            "dtype": str(self.pipeline.transformer.dtype).removeprefix("torch."),
        }
        if self.offline:
            facts["notice"] = OFFLINE_NOTICE
        return facts

    def pipeline_arguments(self, parameters: GenerationParameters, seed: int) -> dict[str, Any]:
        """The diffusers keyword arguments for one request (defaults filled in)."""
        return {
            "audio_end_in_s": parameters.audio_end_in_s,
            "audio_start_in_s": parameters.audio_start_in_s or 0.0,
            "num_inference_steps": parameters.num_inference_steps or DEFAULT_STEPS,
            "guidance_scale": (
                DEFAULT_GUIDANCE if parameters.guidance_scale is None else parameters.guidance_scale
            ),
            "negative_prompt": parameters.negative_prompt,
            # A CPU generator gives the same starting noise whatever device runs the model.
            "generator": torch.Generator("cpu").manual_seed(seed),
        }

    def generate(self, request: GenerationRequest) -> GeneratedAudio:
        """Run the pipeline for one request. Same seed, same device and dtype: same samples."""
        seed = request.parameters.seed
        if seed is None:
            seed = secrets.randbelow(RANDOM_SEED_LIMIT)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.pipeline(request.inputs, **self.pipeline_arguments(request.parameters, seed))
        samples = output.audios[0].float().cpu().numpy()
        return GeneratedAudio(samples, self.sample_rate, seed, time.perf_counter() - started)


def load_generator(
    model: str,
    *,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    token: str | None = None,
) -> AudioGenerator:
    """Load a model by hub id, local folder, or ``"offline"`` (no network, random weights)."""
    device = device or pick_device()
    if model == OFFLINE_MODEL_NAME:
        log.warning(OFFLINE_NOTICE)
        pipeline = build_offline_pipeline().to(device)
        return AudioGenerator(pipeline, model_name=OFFLINE_MODEL_NAME, offline=True, device=device)

    from diffusers import StableAudioPipeline

    dtype = dtype or pick_dtype(device)
    offline = Path(model).is_dir() and is_offline_folder(model)
    try:
        pipeline = StableAudioPipeline.from_pretrained(
            model,
            dtype=dtype,
            token=token or os.environ.get("HF_TOKEN") or None,
        )
    except Exception as exc:  # hub errors come in many types; all mean "could not load"
        raise ModelLoadError(_load_hint(model, exc)) from None
    if offline:
        log.warning(OFFLINE_NOTICE)
    return AudioGenerator(pipeline.to(device), model_name=model, offline=offline, device=device)


def _load_hint(model: str, exc: Exception) -> str:
    text = f"could not load {model!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if "gated" in str(exc).lower() or "401" in str(exc) or "403" in str(exc):
        text += (
            ". The model is gated: accept its licence on its Hugging Face page, then set HF_TOKEN "
            "to a token of that account."
        )
    elif not Path(model).exists():
        text += ". Check the hub id or folder, your network, and HF_TOKEN (the model is gated)."
    return text
