"""One denoising run for several requests, each getting the audio it would get alone.

A single request goes through the public `StableAudioPipeline.__call__` (see `pipeline`); this
module is used only when several requests share a run (``max_batch`` > 1). It is the
pipeline's `__call__` (diffusers 0.36 to 0.42) rewritten for a batch of requests whose
arguments differ, reusing the pipeline's own components and helper methods. A test checks
that one request here equals ``pipeline(...)`` and that a batch equals its requests run one by
one. How each per-request argument is kept per request:

- **Seed.** `pipeline.prepare_latents` takes a list of generators, one per row: row *i*'s
  starting noise is exactly what its generator alone would draw. The cosine DPM-Solver's
  SDE noise comes from torchsde Brownian trees seeded from ``generator.initial_seed()``;
  given a *list* of generators, `scheduler.step` builds one tree per row, each seeded by
  its own request, so the noise added at every step is also the unbatched noise.
- **Duration.** The model always denoises the full 47.55 s window; the duration only enters
  as the projection model's seconds_start/seconds_end conditioning, and the pipeline then
  crops the decoded audio. The pipeline takes one duration per call, so conditioning is
  computed per request (`pipeline.encode_duration`) and each decoded clip is cropped to its
  own ``[start, end)``.
- **Prompt and negative prompt.** Conditioning is built per request with
  `pipeline.encode_prompt`, so a request with a negative prompt and one without (whose
  unconditional half is all zeros in diffusers) can share a batch.
- **Guidance scale.** Applied per row, ``uncond + g_i * (text - uncond)``. Only the on/off
  side (g > 1 runs the transformer on a doubled batch) must match within a batch; with equal
  scales the plain Python float is used, exactly as the pipeline does.
- **Steps.** The scheduler's timesteps are shared, so a batch has one step count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed

# progress(done, total): called after each denoising step.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ResolvedRequest:
    """One request with every default filled in, as the denoising loop uses it."""

    prompt: str
    negative_prompt: str | None
    audio_start_in_s: float
    audio_end_in_s: float
    num_inference_steps: int
    guidance_scale: float
    seed: int

    @property
    def guided(self) -> bool:
        return self.guidance_scale > 1.0

    @property
    def batch_key(self) -> tuple[int, bool]:
        """Requests with equal keys can share one denoising run."""
        return (self.num_inference_steps, self.guided)


@dataclass
class _Conditioning:
    """One request's transformer inputs, rows ordered [unconditional, conditional] when guided."""

    text_audio: torch.Tensor  # encoder_hidden_states rows
    audio_duration: torch.Tensor  # global_hidden_states rows


def _conditioning(pipeline: Any, request: ResolvedRequest, device: torch.device) -> _Conditioning:
    # Mirrors steps 3 and "Encode duration" of StableAudioPipeline.__call__ for one prompt.
    guided = request.guided
    prompt_embeds = pipeline.encode_prompt(request.prompt, device, guided, request.negative_prompt)
    start, end = pipeline.encode_duration(
        request.audio_start_in_s,
        request.audio_end_in_s,
        device,
        guided and request.negative_prompt is not None,
        1,
    )
    text_audio = torch.cat([prompt_embeds, start, end], dim=1)
    audio_duration = torch.cat([start, end], dim=2)
    if guided and request.negative_prompt is None:
        text_audio = torch.cat([torch.zeros_like(text_audio), text_audio], dim=0)
        audio_duration = torch.cat([audio_duration, audio_duration], dim=0)
    return _Conditioning(text_audio, audio_duration)


def _stack(parts: list[torch.Tensor], guided: bool) -> torch.Tensor:
    """Rows [uncond_1..uncond_n, cond_1..cond_n], matching ``torch.cat([latents] * 2)``."""
    if not guided:
        return torch.cat(parts, dim=0)
    return torch.cat([part[:1] for part in parts] + [part[1:] for part in parts], dim=0)


def check_compatible(requests: Sequence[ResolvedRequest]) -> None:
    keys = {request.batch_key for request in requests}
    if len(keys) != 1:
        raise ValueError(f"requests in one batch need the same steps and guidance on/off, got {keys}")


@torch.no_grad()
def denoise_batch(
    pipeline: Any,
    requests: Sequence[ResolvedRequest],
    *,
    progress: Progress | None = None,
) -> list[torch.Tensor]:
    """Generate every request in one run; returns float32 CPU audio, channels first, per request.

    `progress` is called with (steps done, total steps) after every step.
    """
    check_compatible(requests)
    device = pipeline._execution_device  # the GPU even when components are offloaded to the CPU
    dtype = pipeline.transformer.dtype
    guided = requests[0].guided
    steps = requests[0].num_inference_steps

    parts = [_conditioning(pipeline, request, device) for request in requests]
    text_audio = _stack([part.text_audio for part in parts], guided).to(dtype)
    audio_duration = _stack([part.audio_duration for part in parts], guided).to(dtype)
    scales = [request.guidance_scale for request in requests]
    if len(set(scales)) == 1:
        guidance: float | torch.Tensor = scales[0]
    else:  # one scale per row, in the model's dtype so fp16 stays fp16
        guidance = torch.tensor(scales, device=device, dtype=dtype).view(-1, 1, 1)

    pipeline.scheduler.set_timesteps(steps, device=device)
    timesteps = pipeline.scheduler.timesteps
    # A CPU generator draws the same noise whatever device runs the model; one per request.
    generators = [torch.Generator("cpu").manual_seed(request.seed) for request in requests]
    latents = pipeline.prepare_latents(
        len(requests),
        pipeline.transformer.config.in_channels,
        int(pipeline.transformer.config.sample_size),
        dtype,
        device,
        generators,
        audio_channels=pipeline.vae.config.audio_channels,
    )
    cos, sin = get_1d_rotary_pos_embed(
        pipeline.rotary_embed_dim,
        latents.shape[2] + audio_duration.shape[1],
        use_real=True,
        repeat_interleave_real=False,
    )
    # Moved once here, not copied host-to-device at every step and layer.
    rotary_embedding = (cos.to(device), sin.to(device))

    for index, timestep in enumerate(timesteps):
        model_input = torch.cat([latents] * 2) if guided else latents
        model_input = pipeline.scheduler.scale_model_input(model_input, timestep)
        noise_pred = pipeline.transformer(
            model_input,
            timestep.unsqueeze(0),
            encoder_hidden_states=text_audio,
            global_hidden_states=audio_duration,
            rotary_embedding=rotary_embedding,
            return_dict=False,
        )[0]
        if guided:
            noise_uncond, noise_text = noise_pred.chunk(2)
            noise_pred = noise_uncond + guidance * (noise_text - noise_uncond)
        latents = pipeline.scheduler.step(noise_pred, timestep, latents, generator=generators).prev_sample
        if progress is not None:
            progress(index + 1, len(timesteps))

    audio = pipeline.vae.decode(latents).sample
    pipeline.maybe_free_model_hooks()
    sample_rate = pipeline.vae.config.sampling_rate
    return [
        audio[row, :, int(request.audio_start_in_s * sample_rate) : int(request.audio_end_in_s * sample_rate)]
        .float()
        .cpu()
        for row, request in enumerate(requests)
    ]
