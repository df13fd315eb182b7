"""Speed options: the choice by device, and the fallbacks when compile or half precision fail.

Everything runs on the CPU with the offline model. "Compile unavailable" is a real
torch.compile whose backend cannot compile (as on a machine without a C++ compiler or Triton);
"half precision unavailable" is a real model whose activations overflow fp16.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from flexaudio_helpers import inprocess
from flexaudio_helpers.errors import NonFiniteAudio, SilentAudioWarning
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.serving.offline_model import OUTPUT_GAIN_DB, build_offline_pipeline
from flexaudio_helpers.serving.pipeline import AudioGenerator, load_generator
from flexaudio_helpers.serving.speed import SpeedOptions, choose_speed_options, parse_dtype

GIB = 2**30
REQUEST = GenerationRequest.build("a door slams", audio_end_in_s=1.0, num_inference_steps=2, seed=11)


@pytest.fixture(scope="module")
def plain():
    """The reference: fp32, eager, no warm-up."""
    generator = load_generator("offline", device="cpu")
    return generator, generator.generate(REQUEST)


def test_cpu_gets_fp32_eager():
    options = choose_speed_options("cpu")
    assert (options.dtype, options.compile, options.warm_up) == (torch.float32, False, False)
    assert not (options.vae_slicing or options.vae_tiling or options.cpu_offload)


def test_cuda_gets_half_precision_and_slicing():
    options = choose_speed_options("cuda", memory_bytes=80 * GIB)
    assert (options.dtype, options.warm_up) == (torch.float16, True)
    assert options.vae_slicing and not options.vae_tiling and not options.cpu_offload


def test_small_gpus_save_memory():
    assert choose_speed_options("cuda", memory_bytes=12 * GIB).vae_tiling
    tiny = choose_speed_options("cuda", memory_bytes=6 * GIB)
    assert tiny.vae_tiling and tiny.cpu_offload


def test_overrides_win_over_the_automatic_choice():
    options = choose_speed_options("cuda", memory_bytes=6 * GIB, dtype="bf16", cpu_offload=False)
    assert (options.dtype, options.cpu_offload) == (torch.bfloat16, False)
    assert parse_dtype("auto") is None
    with pytest.raises(ValueError, match="unknown dtype 'half'; use auto, float32"):
        parse_dtype("half")


def test_fp32_gives_exactly_the_diffusers_pipelines_audio(plain):
    _, ours = plain
    reference = build_offline_pipeline()
    reference.set_progress_bar_config(disable=True)
    expected = reference(
        REQUEST.inputs,
        audio_end_in_s=1.0,
        num_inference_steps=2,
        generator=torch.Generator("cpu").manual_seed(11),
    ).audios[0]
    np.testing.assert_array_equal(ours.samples, expected.numpy())


def test_the_seed_fixes_every_steps_noise_so_it_repeats_a_clip_only_on_one_device(plain):
    """Issue 27: `CosineDPMSolverMultistepScheduler.step` seeds torchsde's noise from the generator's
    seed, drawn on the model's device. With the same starting latents, the seed alone still changes
    the clip; the same seed twice on the CPU is bit-equal."""
    pipeline = plain[0].pipeline
    config = pipeline.transformer.config
    start = torch.randn(1, config.in_channels, config.sample_size, generator=torch.Generator().manual_seed(0))

    def run(seed: int) -> np.ndarray:
        generator = torch.Generator("cpu").manual_seed(seed)
        return (
            pipeline(
                REQUEST.inputs,
                audio_end_in_s=1.0,
                num_inference_steps=2,
                latents=start.clone(),
                generator=generator,
            )
            .audios[0]
            .numpy()
        )

    first = run(1)
    np.testing.assert_array_equal(first, run(1))
    assert np.abs(first - run(2)).max() > 1e-3 * np.abs(first).max()


@pytest.mark.slow  # torch.compile on a CPU takes tens of seconds
def test_compiled_transformer_gives_the_same_audio(plain):
    _, expected = plain
    graphs = []

    def capture_then_run_eagerly(graph, example_inputs):
        # torch.compile's graph capture without needing a C++ compiler (like the "eager" backend).
        graphs.append(graph)
        return graph.forward

    compiled = load_generator(
        "offline", device="cpu", options=SpeedOptions(compile=True, compile_backend=capture_then_run_eagerly)
    )
    np.testing.assert_array_equal(compiled.generate(REQUEST).samples, expected.samples)
    assert graphs, "a single request (the pipeline's own call) did not run the compiled transformer"
    compiled.warm_up()
    assert compiled.options.compile and not compiled.speed.fallbacks
    np.testing.assert_array_equal(compiled.generate(REQUEST).samples, expected.samples)


def _no_compiler(graph, example_inputs):
    raise RuntimeError("no C++ compiler on this machine")


@pytest.mark.slow  # a pipeline of its own
def test_compile_failure_falls_back_to_eager(plain):
    _, expected = plain
    generator = load_generator(
        "offline",
        device="cpu",
        options=SpeedOptions(compile=True, compile_backend=_no_compiler, warm_up=True),
    )
    assert not generator.options.compile
    assert "torch.compile failed" in generator.speed.fallbacks[0]
    assert "no C++ compiler" in generator.describe()["speed_fallbacks"][0]
    np.testing.assert_array_equal(generator.generate(REQUEST).samples, expected.samples)


@pytest.mark.slow  # a half-precision pipeline of its own (the choice itself is tested above)
def test_half_precision_runs_the_transformer_and_vae_only():
    generator = load_generator("offline", device="cpu", dtype="bf16", warm_up=False)
    pipeline = generator.pipeline
    assert (pipeline.transformer.dtype, pipeline.vae.dtype) == (torch.bfloat16, torch.bfloat16)
    assert (pipeline.text_encoder.dtype, pipeline.projection_model.dtype) == (torch.float32, torch.float32)
    audio = generator.generate(REQUEST)
    assert audio.samples.dtype == np.float32 and np.isfinite(audio.samples).all()
    assert generator.describe()["dtype"] == "bfloat16"


@pytest.mark.slow  # a pipeline of its own, warmed up twice
def test_half_precision_overflow_falls_back_to_fp32():
    pipeline = build_offline_pipeline()
    # The last decoder layer now outputs ~1e6 (undoing the offline model's quiet output gain first):
    # fine in fp32, inf in fp16.
    with torch.no_grad():
        pipeline.vae.decoder.conv2.weight_g.mul_(2e6 * 10 ** (-OUTPUT_GAIN_DB / 20))
    generator = AudioGenerator(
        pipeline,
        model_name="overflowing",
        offline=True,
        device="cpu",
        options=SpeedOptions(dtype=torch.float16, warm_up=True),
    )
    assert generator.options.dtype == torch.float32
    assert generator.pipeline.transformer.dtype == torch.float32
    assert generator.speed.fallbacks == ["float16 gave non-finite audio; using float32"]
    assert np.isfinite(generator.generate(REQUEST).samples).all()


def test_every_generation_checks_its_audio(plain):
    """Not only the half-precision warm-up: a real decoder made to give NaN, then silence, on the
    loaded fp32 generator (no fallback to make there) gives a typed error, then a warning."""
    generator, expected = plain
    decoder = generator.pipeline.vae.decoder
    outcomes = {
        float("nan"): pytest.raises(NonFiniteAudio, match="NaN or infinite samples in float32"),
        0.0: pytest.warns(SilentAudioWarning, match="seed 11 is silent"),
    }
    for scale, outcome in outcomes.items():
        hook = decoder.register_forward_hook(lambda module, inputs, output, scale=scale: output * scale)
        try:
            with outcome:
                generator.generate(REQUEST)
        finally:
            hook.remove()
    with warnings.catch_warnings(category=SilentAudioWarning, action="error"):  # the noise is not silence
        np.testing.assert_array_equal(generator.generate(REQUEST).samples, expected.samples)


def test_apple_mps_gets_fp32_and_a_warm_up_that_times_it():
    options = choose_speed_options("mps")
    assert (options.dtype, options.warm_up, options.cpu_offload) == (torch.float32, True, False)


def test_the_expected_time_comes_from_the_last_run(plain, monkeypatch, capsys):
    generator, _ = plain
    generator.generate(REQUEST)  # 2 steps: the time of the second, and of decoding
    assert generator.describe()["seconds_per_step"] == round(generator.seconds_per_step, 4) > 0
    long = REQUEST.with_parameters(num_inference_steps=200)
    expected = 200 * generator.seconds_per_step + generator.decoding_seconds
    assert generator.expected_seconds(long) == pytest.approx(expected)
    assert generator.expected_seconds(long, 3) == pytest.approx(3 * expected)
    monkeypatch.setattr(inprocess, "LONG_RUN_SECONDS", 0.0)  # said before any run longer than this
    inprocess.generate_here(generator, REQUEST)
    assert capsys.readouterr().out.startswith("Expected: about ")
