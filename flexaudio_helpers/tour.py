"""The seed tutorial's three example requests, as data.

The notebooks write them out as literal `client.generate(...)` calls; `SEED_EXAMPLES` keeps the same
values for tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .params import GenerationRequest


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
