"""Speed of the local pipeline against the diffusers recipe, measured side by side in one run.

    python bench/gpu_speed.py                 # a CUDA GPU: full-size model, 200 steps, 10 s and 47.55 s
    python bench/gpu_speed.py --cpu           # CPU proof run: offline-size model, few steps, few minutes
    python bench/gpu_speed.py --json out.json # also keep the figures as JSON

The model is the full-size Stable Audio Open 1.0 architecture (1.06 B-parameter DiT, Oobleck VAE,
t5-base encoder) with random weights: the hub weights are gated, and speed does not depend on
the weights' values. ``--small`` uses the offline model's shrunken widths instead.

Per configuration (same GPU, same run): seconds per clip (median of ``--repeats`` after one
untimed run), ratio to the recipe, peak GPU memory, achieved TFLOP/s (4.54 TFLOP per guided
step + 5.16 TFLOP per full decode for the full size; counted with torch's FLOP counter for
``--small``), and agreement with our fp32 output for the same request (max abs diff, SNR).
The recipe is diffusers' documented one: the fp16 pipeline called directly, default attention.
It gets a CPU generator with the same seed so its output can be compared too.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import logging as diffusers_logging

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flexaudio_helpers.params import MAX_AUDIO_SECONDS, GenerationRequest
from flexaudio_helpers.serving.offline_model import build_offline_pipeline
from flexaudio_helpers.serving.pipeline import AudioGenerator
from flexaudio_helpers.serving.speed import SpeedOptions, choose_speed_options, dtype_name

warnings.filterwarnings("ignore", message=r"Should have t[ab]")
warnings.filterwarnings("ignore", category=FutureWarning)
diffusers_logging.set_verbosity_error()  # the recipe's .to(fp16) warns about fp32 modules these classes lack

FULL_STEP_TFLOP = 4.54  # one guided denoising step of the full-size model
FULL_DECODE_TFLOP = 5.16  # one full-window VAE decode
PROMPT = "The sound of a hammer hitting a wooden surface."
NEGATIVE_PROMPT = "Low quality."
SEED = 0


def build_full_size_pipeline():
    """Stable Audio Open 1.0's components at their real sizes, random weights (fp32, CPU)."""
    from diffusers import (
        AutoencoderOobleck,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
    )
    from transformers import T5Config, T5EncoderModel

    small = build_offline_pipeline()  # borrow its tokenizer (no download) and scheduler config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = T5EncoderModel(  # t5-base
            T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
        )
        projection_model = StableAudioProjectionModel(
            text_encoder_dim=768, conditioning_dim=768, min_value=0, max_value=512
        )
        transformer = StableAudioDiTModel()  # the defaults are stable-audio-open-1.0's config
        vae = AutoencoderOobleck()  # likewise
    return StableAudioPipeline(
        vae=vae,
        text_encoder=text_encoder,
        projection_model=projection_model,
        tokenizer=small.tokenizer,
        transformer=transformer,
        scheduler=small.scheduler,
    )


@dataclass
class Row:
    name: str
    seconds: float
    dtype: str
    peak_gib: float | None = None
    tflops: float | None = None
    max_abs_diff: float | None = None
    snr_db: float | None = None
    notes: list[str] = field(default_factory=list)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def timed(run, repeats: int, device: str) -> tuple[float, np.ndarray]:
    """Median seconds of `repeats` runs after one untimed run, and the last output."""
    output = run()
    times = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        output = run()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times), output


def agreement(reference: np.ndarray, audio: np.ndarray) -> tuple[float, float]:
    """Max abs difference and signal-to-noise ratio (dB) of `audio` against `reference`."""
    error = reference.astype(np.float64) - audio.astype(np.float64)
    if not np.isfinite(error).all():
        return math.inf, -math.inf
    noise = float(np.sum(error**2))
    snr = (
        math.inf if noise == 0 else 10 * math.log10(float(np.sum(reference.astype(np.float64) ** 2)) / noise)
    )
    return float(np.abs(error).max()), snr


def count_tflop(pipeline, steps: int, device: str) -> float:
    """TFLOP of one guided clip at `steps`, counted on runs of 1 and 2 steps (FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    generator = AudioGenerator(
        pipeline, model_name="count", offline=True, device=device, options=SpeedOptions()
    )
    counts = []
    for count_steps in (1, 2):
        counter = FlopCounterMode(display=False)
        with counter:
            generator.generate(GenerationRequest.build(PROMPT, num_inference_steps=count_steps, seed=SEED))
        counts.append(counter.get_total_flops())
    per_step = counts[1] - counts[0]
    return (counts[0] + (steps - 1) * per_step) * 1e-12


def recipe_run(pipeline, request: GenerationRequest):
    """diffusers' documented call (fp16 pipeline, default attention) for `request`."""
    parameters = request.parameters

    def run() -> np.ndarray:
        audio = pipeline(
            request.inputs,
            negative_prompt=parameters.negative_prompt,
            num_inference_steps=parameters.num_inference_steps,
            audio_end_in_s=parameters.audio_end_in_s,
            # The docs use a CUDA generator; a CPU one with the same seed makes the output comparable.
            generator=torch.Generator("cpu").manual_seed(parameters.seed),
        ).audios
        return audio[0].float().cpu().numpy()

    return run


def configurations(device: str, names: list[str] | None) -> dict[str, SpeedOptions]:
    """Our configurations; the first is the fp32 reference."""
    cuda = device.startswith("cuda")
    base = choose_speed_options(device, warm_up=True)
    half = torch.float16 if cuda else torch.bfloat16
    every = {
        "ours fp32 (reference)": SpeedOptions(**{**vars(base), "dtype": torch.float32}),
        "ours fp16": SpeedOptions(**{**vars(base), "dtype": torch.float16}),
        "ours bf16": SpeedOptions(**{**vars(base), "dtype": torch.bfloat16}),
        "ours fp16 + compile": SpeedOptions(**{**vars(base), "dtype": torch.float16, "compile": True}),
        "ours bf16 + compile": SpeedOptions(**{**vars(base), "dtype": torch.bfloat16, "compile": True}),
        "ours fp16 + compile + CUDA graphs": SpeedOptions(
            **{**vars(base), "dtype": torch.float16, "compile": True, "compile_mode": "reduce-overhead"}
        ),
        "ours fp32 + compile": SpeedOptions(**{**vars(base), "dtype": torch.float32, "compile": True}),
    }
    if names:
        return {name: every[name] for name in ["ours fp32 (reference)", *names] if name in every}
    if cuda:
        return {name: every[name] for name in list(every)[:6]}
    chosen = [
        "ours fp32 (reference)",
        f"ours {dtype_name(half).replace('bfloat', 'bf')}",
        "ours fp32 + compile",
    ]
    return {name: every[name] for name in chosen}


class Weights:
    """One pipeline reused by every configuration, reset to its original fp32 weights in between
    (casting fp32 -> fp16 -> bf16 would lose bits; rebuilding the full size takes a while)."""

    COMPONENTS = ("text_encoder", "projection_model", "transformer", "vae")

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.saved = {
            name: {
                key: value.detach().to("cpu", copy=True)
                for key, value in getattr(pipeline, name).state_dict().items()
            }
            for name in self.COMPONENTS
        }

    def fresh(self):
        torch._dynamo.reset()  # forget graphs compiled for the previous configuration
        for name, state in self.saved.items():
            module = getattr(self.pipeline, name)
            torch.nn.Module.to(module, dtype=torch.float32)
            module.load_state_dict(state)
        self.pipeline.vae.disable_slicing()
        self.pipeline.vae.disable_tiling()
        self.pipeline.set_progress_bar_config(disable=True)
        return self.pipeline


def clip_request(steps: int, seconds: float) -> GenerationRequest:
    return GenerationRequest.build(
        PROMPT, negative_prompt=NEGATIVE_PROMPT, num_inference_steps=steps, audio_end_in_s=seconds, seed=SEED
    )


def measure(args, weights: Weights, device: str, tflop_per_clip: float) -> dict[float, list[Row]]:
    """One row per configuration and duration: the recipe first, then ours (fp32 reference first)."""
    rows: dict[float, list[Row]] = {seconds: [] for seconds in args.durations}
    outputs: dict[float, list[np.ndarray]] = {seconds: [] for seconds in args.durations}

    # The recipe: fp16 on GPUs as documented; fp32 on the CPU, where fp16 is not a real option.
    recipe_dtype = torch.float16 if device.startswith("cuda") else torch.float32
    pipeline = weights.fresh().to(device, recipe_dtype)
    for seconds in args.durations:
        reset_memory(device)
        clip_seconds, audio = timed(
            recipe_run(pipeline, clip_request(args.steps, seconds)), args.repeats, device
        )
        name = f"diffusers recipe ({dtype_name(recipe_dtype)})"
        rows[seconds].append(Row(name, clip_seconds, dtype_name(recipe_dtype), peak_gib(device)))
        outputs[seconds].append(audio)
        print(f"  {seconds:g} s, {name}: {clip_seconds:.3f} s", flush=True)

    for name, options in configurations(device, args.configs).items():
        started = time.perf_counter()
        generator = AudioGenerator(
            weights.fresh(), model_name=name, offline=True, device=device, options=options
        )
        load_seconds = time.perf_counter() - started
        for seconds in args.durations:
            request = clip_request(args.steps, seconds)
            reset_memory(device)
            clip_seconds, audio = timed(
                lambda g=generator, r=request: g.generate(r).samples, args.repeats, device
            )
            row = Row(name, clip_seconds, dtype_name(generator.options.dtype), peak_gib(device))
            row.notes = [f"load + warm-up {load_seconds:.1f} s", *generator.speed.fallbacks]
            rows[seconds].append(row)
            outputs[seconds].append(audio)
            print(f"  {seconds:g} s, {name}: {clip_seconds:.3f} s", flush=True)
        del generator

    for seconds in args.durations:
        reference = outputs[seconds][1]  # ours in fp32
        for row, audio in zip(rows[seconds], outputs[seconds], strict=True):
            row.max_abs_diff, row.snr_db = agreement(reference, audio)
            row.tflops = tflop_per_clip / row.seconds
    return rows


def format_number(value: float | None, pattern: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "exact" if value > 0 else "non-finite"
    return format(value, pattern)


def table(rows: list[Row]) -> str:
    recipe = rows[0].seconds
    lines = [
        "| configuration | dtype | s / clip | speed-up vs recipe | peak GPU GiB | TFLOP/s "
        "| max abs diff vs fp32 | SNR vs fp32 (dB) | notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {row.dtype} | {row.seconds:.3f} | {recipe / row.seconds:.2f}x "
            f"| {format_number(row.peak_gib, '.2f')} | {format_number(row.tflops, '.3g')} "
            f"| {format_number(row.max_abs_diff, '.2e')} | {format_number(row.snr_db, '.1f')} "
            f"| {'; '.join(row.notes)} |"
        )
    return "\n".join(lines)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cpu", action="store_true", help="CPU proof run: --device cpu --small, fewer steps")
    parser.add_argument("--small", action="store_true", help="the offline model's widths, not the full size")
    parser.add_argument(
        "--steps", type=int, default=None, help="denoising steps (default 200; 20 with --cpu)"
    )
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, MAX_AUDIO_SECONDS])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per configuration (default 3)")
    parser.add_argument(
        "--configs", nargs="+", default=None, help="our configurations to run (names as printed)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    if args.cpu:
        args.device, args.small = "cpu", True
    args.steps = args.steps or (20 if args.cpu else 200)
    args.repeats = args.repeats or (2 if args.cpu else 3)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    device = args.device
    size = "offline-size (--small)" if args.small else "full-size"
    print(f"{date.today()} on {device_name(device)}; torch {torch.__version__}; {size} model, random weights")
    print(
        f"{args.steps} guided steps per clip, seed {SEED}, "
        f"median of {args.repeats} runs after one untimed run\n"
    )
    base = build_offline_pipeline() if args.small else build_full_size_pipeline()
    if args.small:
        tflop_per_clip = count_tflop(base, args.steps, device)
    else:
        tflop_per_clip = args.steps * FULL_STEP_TFLOP + FULL_DECODE_TFLOP
    weights = Weights(base)

    report: dict = {
        "date": str(date.today()),
        "device": device_name(device),
        "size": size,
        "steps": args.steps,
    }
    rows = measure(args, weights, device, tflop_per_clip)
    report["durations"] = {
        str(seconds): [vars(row) for row in table_rows] for seconds, table_rows in rows.items()
    }
    for seconds, table_rows in rows.items():
        print(f"\n### {seconds:g} s clip, {args.steps} steps\n\n{table(table_rows)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
