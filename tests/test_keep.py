"""Keeping latent frames (serving/keep.py) on the offline model: the real pipeline and scheduler."""

from __future__ import annotations

import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.serving.keep import Kept, keeping, kept
from flexaudio_helpers.serving.pipeline import call_pipeline, load_generator

STEPS = 6
SEED = 7


@pytest.fixture(scope="module")
def generator():
    return load_generator("offline", device="cpu")


def _reference(pipeline) -> Kept:
    channels = pipeline.transformer.config.in_channels
    values = torch.linspace(-2, 2, 300 * channels).reshape(channels, 300)
    return kept(pipeline, [(100, values[:, :200]), (900, values[:, 200:])])


def test_kept_frames_hold_the_reference_at_each_steps_sigma_then_exactly(generator):
    pipeline = generator.pipeline
    keep = _reference(pipeline)
    generators = [torch.Generator("cpu").manual_seed(SEED)]
    latents, write_kept = keeping(pipeline, keep, generators)
    noise = randn_tensor((1, 4, 1024), generator=torch.Generator("cpu").manual_seed(SEED))
    seen = []

    def callback(step, timestep, latents):
        write_kept(step, timestep, latents)
        seen.append((step, pipeline.scheduler.step_index, latents[0].clone()))

    with torch.inference_mode():
        out = pipeline(
            "rain",
            num_inference_steps=STEPS,
            generator=generators,
            latents=latents,
            callback=callback,
            callback_steps=1,
            output_type="latent",
        ).audios[0]
    # The schedule the pipeline ran, read from the scheduler's public attribute after the run.
    sigmas = pipeline.scheduler.sigmas
    assert float(sigmas[-1]) == 0.0 and len(seen) == STEPS
    mask = keep.frames
    for step, index, after in seen:
        assert index == step + 1  # after step k the latents are read at sigmas[k + 1]
        expected = keep.reference + float(sigmas[step + 1]) * noise[0]
        assert torch.equal(after[:, mask], expected[:, mask]), step
    assert torch.equal(out[:, mask], keep.reference[:, mask])
    # The kept frames shaped the rest: the generated frames differ from a run keeping nothing.
    free = call_pipeline(pipeline, generator.resolve(_request()), [SEED], output_type="latent")[0]
    assert (out[:, ~mask] - free[:, ~mask]).abs().max() > 1e-3


def _request():
    return GenerationRequest.build("rain", num_inference_steps=STEPS, seed=SEED)


def test_keeping_nothing_is_the_plain_run_and_seeds_reproduce(generator):
    pipeline = generator.pipeline
    nothing = kept(pipeline, [])
    resolved = generator.resolve(_request())
    plain = call_pipeline(pipeline, resolved, [SEED], output_type="latent")
    with_keep = call_pipeline(pipeline, resolved, [SEED], output_type="latent", keep=nothing)
    assert torch.equal(plain, with_keep)
    keep = _reference(pipeline)
    first = call_pipeline(pipeline, resolved, [SEED], output_type="latent", keep=keep)
    again = call_pipeline(pipeline, resolved, [SEED], output_type="latent", keep=keep)
    assert torch.equal(first, again)
    assert torch.equal(first[0][:, keep.frames], keep.reference[:, keep.frames])


def test_a_window_returns_its_latents_and_their_audio(generator):
    keep = _reference(generator.pipeline)
    latents, audio = generator.window(_request(), keep)
    assert latents.shape == (4, 1024) and audio.shape == (2, 1024 * 2048)
    assert torch.equal(latents[:, keep.frames], keep.reference[:, keep.frames])
