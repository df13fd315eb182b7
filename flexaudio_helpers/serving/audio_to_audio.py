"""Audio-to-audio: denoise from a source clip plus some noise instead of from pure noise.

`StableAudioPipeline.__call__` does the work (``initial_audio_waveforms``): it encodes the
source with the VAE and adds the starting noise. How much noise is the *init noise level*,
stable-audio-tools' name for where the sampler starts: the scheduler's ``sigma_max`` (500 for
text-to-audio, which buries any source). Here the pipeline runs with a copy of its scheduler
configured with ``sigma_max = level``.

One correction (diffusers 0.42.1): the pipeline scales its starting noise by the scheduler's
``init_noise_sigma``, which is ``sqrt(sigma_max**2 + 1)``, sized for pure noise. At low levels
that adds noise of about 1 whatever the level (1.41 at level 1, 1.05 at 0.31). So the noise is
drawn here, from the same generators and in the same order as the pipeline would, and passed
as ``latents`` pre-scaled, so that the source gets exactly ``level`` times unit noise, as in
stable-audio-tools.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from ..errors import InvalidParameters
from ..init_audio import source_arrays

# The source's shape survives at the default level; near sigma_max it does not.
from ..params import DEFAULT_INIT_NOISE_LEVEL as DEFAULT_INIT_NOISE_LEVEL


def source_waveform(source: Any, *, sample_rate: int, max_seconds: float) -> np.ndarray:
    """The source as float32 stereo (2, frames) at `sample_rate`.

    `source` is a `Clip`, an audio file path, or a ``(samples, sample_rate)`` pair with samples
    (channels, frames). Other rates are resampled (librosa), mono is widened to stereo. Sources
    longer than the model's window, or that cannot be decoded, raise `InvalidParameters`
    (`init_audio.source_arrays`).
    """
    samples, rate = source_arrays(source, max_seconds=max_seconds)
    if rate != sample_rate:
        import librosa  # imported here: it takes seconds, and only audio-to-audio needs it

        samples = librosa.resample(samples, orig_sr=rate, target_sr=sample_rate)
    frames = min(samples.shape[1], round(max_seconds * sample_rate))
    return np.ascontiguousarray(np.broadcast_to(samples[:, :frames], (2, frames)), dtype=np.float32)


def check_level(level: float, scheduler: Any) -> float:
    """`level` if the scheduler can start there: above its ``sigma_min``, at most its ``sigma_max``."""
    low, high = scheduler.config.sigma_min, scheduler.config.sigma_max
    if not (isinstance(level, int | float) and math.isfinite(level) and low < level <= high):
        allowed = f"more than {low:g} (the scheduler's sigma_min) up to {high:g}"
        raise InvalidParameters(
            f"init_noise_level: {level!r} is out of range; allowed: {allowed}",
            field="init_noise_level",
            value=level,
            allowed=allowed,
        )
    return float(level)


@contextmanager
def starting_at(pipeline: Any, level: float, generators: list[torch.Generator]) -> Iterator[dict]:
    """Within it, the pipeline's scheduler starts at `level`; yields the ``latents`` to pass.

    The generators are advanced by the noise draw, so the pipeline's later draw (the VAE
    posterior sample) continues where it would have.
    """
    original = pipeline.scheduler
    pipeline.scheduler = type(original).from_config(original.config, sigma_max=level)
    try:
        shape = (
            len(generators),
            pipeline.transformer.config.in_channels,
            int(pipeline.transformer.config.sample_size),
        )
        # As the pipeline draws it: CPU generators, the transformer's dtype (the conditioning's).
        noise = randn_tensor(shape, generator=generators, dtype=pipeline.transformer.dtype)
        yield {"latents": noise * (level / pipeline.scheduler.init_noise_sigma)}
    finally:
        pipeline.scheduler = original
