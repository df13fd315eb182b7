"""Keep these latent frames, generate the rest: the one mechanism behind extend, loop and repaint.

It runs on `StableAudioPipeline.__call__`'s public arguments only (our code never calls the
scheduler's ``step`` or the transformer): ``latents=`` for the starting noise, the per-step
``callback(step, t, latents)``, and ``output_type="latent"`` for chaining windows in latent space.
In the kept frames the callback writes the reference noised to the σ the next step starts from,
RePaint-style (as FastVideo PR #1260 does inside one canvas), and after the last step the
reference itself.

What was checked in diffusers 0.42.1 (pipeline_stable_audio.py, scheduling_cosine_dpmsolver_multistep.py):

- ``prepare_latents`` multiplies given ``latents`` by ``scheduler.init_noise_sigma``
  (``sqrt(sigma_max**2 + 1)``), so the kept frames are passed divided by it.
- The scheduler is variance exploding (``_sigma_to_alpha_sigma_t``: alpha = 1), so a latent at
  noise level σ is ``x0 + σ * noise``; ``scale_model_input`` reads ``sigmas[step_index]``.
- ``step`` moves the sample from ``sigmas[step_index]`` to ``sigmas[step_index + 1]``, then adds 1
  to ``step_index``. The pipeline calls ``callback`` right after, with the tensor the next step
  uses (``latents = scheduler.step(...).prev_sample``), so in the callback the latents hold
  ``sigmas[scheduler.step_index]``: ``sigmas[k + 1]`` after step k. On the offline model with 6
  steps: 113.4, 25.7, 5.83, 1.32, 0.3, then 0.0 after the last step (``final_sigmas_type="zero"``,
  the real model's config too). tests/test_keep.py checks the kept frames after every step.
- Writing into ``latents`` in place inside the callback carries into the next step (it is the
  same tensor), and with ``output_type="latent"`` the pipeline returns that tensor.
- audio_to_audio.py swaps in a scheduler that starts lower; the callback reads whichever
  scheduler the pipeline holds while it runs, so both compose (not used by the verbs).

The reference comes from the VAE encoder as the pipeline encodes ``initial_audio_waveforms``
(``vae.encode(audio).latent_dist``; its mean here, so that the reference does not depend on the
seed), or straight from a previous window's latents.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor


@dataclass(frozen=True)
class Kept:
    """Latent frames to keep: `reference` (channels, frames) over the whole window, and `frames`,
    a bool mask (frames,) that is True where the reference is kept."""

    reference: torch.Tensor
    frames: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.frames.sum())


def window_frames(pipeline: Any) -> int:
    """Latent frames in the model's window (1024 for Stable Audio Open: 47.55 s)."""
    return int(pipeline.transformer.config.sample_size)


def hop(pipeline: Any) -> int:
    """Audio samples per latent frame (2048)."""
    return int(pipeline.vae.hop_length)


def frames_of(pipeline: Any, start_s: float, end_s: float) -> tuple[int, int]:
    """The latent frames [first, last) that cover the audio [start_s, end_s) of a window."""
    rate = pipeline.vae.config.sampling_rate
    first = max(0, math.floor(start_s * rate / hop(pipeline)))
    last = min(window_frames(pipeline), math.ceil(end_s * rate / hop(pipeline)))
    return first, last


def encode(pipeline: Any, samples: np.ndarray) -> torch.Tensor:
    """Stereo samples (2, n) at the model's rate, as latents (channels, ceil(n / hop)), as the
    pipeline encodes ``initial_audio_waveforms`` (zero-padded to whole frames)."""
    frames = math.ceil(samples.shape[1] / hop(pipeline))
    padded = np.zeros((samples.shape[0], frames * hop(pipeline)), dtype=np.float32)
    padded[:, : samples.shape[1]] = samples
    vae = pipeline.vae
    audio = torch.from_numpy(padded)[None].to(vae.device, vae.dtype)
    with torch.inference_mode():
        return vae.encode(audio).latent_dist.mode()[0].float().cpu()


def kept(pipeline: Any, pieces: list[tuple[int, torch.Tensor]]) -> Kept:
    """A `Kept` from (first frame, latents (channels, n)) pieces placed in an empty window."""
    channels = int(pipeline.transformer.config.in_channels)
    reference = torch.zeros(channels, window_frames(pipeline))
    frames = torch.zeros(window_frames(pipeline), dtype=torch.bool)
    for first, latents in pieces:
        latents = latents[:, : window_frames(pipeline) - first]
        reference[:, first : first + latents.shape[1]] = latents
        frames[first : first + latents.shape[1]] = True
    return Kept(reference, frames)


Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


def keeping(pipeline: Any, keep: Kept, generators: list[torch.Generator]) -> tuple[torch.Tensor, Callback]:
    """(``latents`` to pass, ``callback`` to pass) for one call of `pipeline` that keeps `keep`.

    The noise is drawn once, from `generators` as the pipeline would draw its own (so without a
    kept frame the run is the plain one for the same seeds); the kept frames reuse it at every σ.
    The callback must run after every step (``callback_steps=1``).
    """
    shape = (len(generators), int(pipeline.transformer.config.in_channels), window_frames(pipeline))
    dtype = pipeline.transformer.dtype
    noise = randn_tensor(shape, generator=generators, dtype=dtype)
    reference = keep.reference.to(dtype)[None]
    mask = keep.frames
    start = noise.clone()
    sigma_start = float(pipeline.scheduler.config.sigma_max)  # set_timesteps starts the schedule here
    start[..., mask] = (reference + sigma_start * noise)[..., mask] / pipeline.scheduler.init_noise_sigma

    def write_kept(step: int, timestep: torch.Tensor, latents: torch.Tensor) -> None:
        scheduler = pipeline.scheduler
        if scheduler.step_index >= len(scheduler.timesteps):  # after the last step: exactly
            value = reference
        else:
            value = reference + float(scheduler.sigmas[scheduler.step_index]) * noise
        latents[..., mask] = value.to(latents.device, latents.dtype)[..., mask]

    return start, write_kept
