"""Loading Stable Audio Open (real or offline) and turning requests into audio.

`load_generator("stabilityai/stable-audio-open-1.0")` loads the real weights (gated on the
Hugging Face hub: the token notebook 01 saved, ``HF_TOKEN`` or an ``hf auth login``), a local
diffusers folder loads the same way, and `load_generator("offline")` builds the offline model in
code with no network.

Speed options (dtype, compile, VAE slicing/tiling, CPU offload) are chosen by device in
`speed.choose_speed_options`; pass overrides to `load_generator`. Every request runs through
the public `StableAudioPipeline.__call__`.
"""

from __future__ import annotations

import html
import logging
import secrets
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio import warn_if_silent
from ..errors import InvalidParameters, ModelLoadError, NonFiniteAudio, SilentAudioWarning
from ..params import DEFAULT_STEPS, MAX_SEED, RANDOM_SEED_LIMIT, GenerationRequest, check_count
from ..params import MAX_VARIATIONS as MAX_VARIATIONS  # takes per call, also the client's limit
from ..protocol import OFFLINE_NOTICE
from .audio_to_audio import DEFAULT_INIT_NOISE_LEVEL, check_level, source_waveform, starting_at
from .keep import Kept, keeping
from .offline_model import OFFLINE_MODEL_NAME, build_offline_pipeline, is_offline_folder
from .speed import (
    HALF_DTYPES,
    SpeedOptions,
    SpeedReport,
    choose_speed_options,
    compile_transformer,
    dtype_name,
    full_precision_copy,
    hand_conditioning_to_transformer,
    pick_device,
    place_pipeline,
    restore_weights,
    run_eagerly,
)

log = logging.getLogger(__name__)


# The pipeline's own defaults, applied here so the response can report what was used.
DEFAULT_GUIDANCE = 7.0
WARM_UP_STEPS = 2

# progress(done, total): called after each denoising step.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ResolvedRequest:
    """One request with every default filled in, as the pipeline is called with it."""

    prompt: str
    negative_prompt: str | None
    audio_start_in_s: float
    audio_end_in_s: float
    num_inference_steps: int
    guidance_scale: float
    seed: int


@dataclass(frozen=True)
class GeneratedAudio:
    """One generation: float32 samples, channels first, its seed and its run's wall time."""

    samples: np.ndarray
    sample_rate: int
    seed: int
    seconds: float


class AudioGenerator:
    """A loaded `StableAudioPipeline`, its speed options, and the facts the endpoint reports."""

    def __init__(
        self,
        pipeline: Any,
        *,
        model_name: str,
        offline: bool,
        device: str,
        options: SpeedOptions | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.model_name = model_name
        self.offline = offline
        self.device = device
        self.speed = SpeedReport(options or choose_speed_options(device))
        # The scheduler keeps per-run state: one run at a time, whoever calls.
        self._lock = threading.Lock()
        #: Measured by the last run of 2 or more steps (the warm-up on a GPU): seconds per step and
        #: take, and for the VAE's decoding; None before any.
        self.seconds_per_step: float | None = None
        self.decoding_seconds: float | None = None
        pipeline.set_progress_bar_config(disable=True)
        # Casting to half precision and back loses bits (or overflows to inf): keep the original
        # weights on the CPU until the warm-up has shown that half precision works.
        self._original_weights = (
            full_precision_copy(pipeline)
            if self.options.warm_up and self.options.dtype in HALF_DTYPES
            else None
        )
        place_pipeline(pipeline, self.options, device)
        hand_conditioning_to_transformer(pipeline)
        compile_transformer(pipeline.transformer, self.options)
        if self.options.warm_up:
            self.warm_up()
        self._original_weights = None

    @property
    def options(self) -> SpeedOptions:
        return self.speed.options

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
            "dtype": dtype_name(self.pipeline.transformer.dtype),
            "speed": self.options.describe(),
        }
        if self.speed.fallbacks:
            facts["speed_fallbacks"] = list(self.speed.fallbacks)
        if self.seconds_per_step is not None:
            facts["seconds_per_step"] = round(self.seconds_per_step, 4)
        if self.offline:
            facts["notice"] = OFFLINE_NOTICE
        return facts

    def _repr_html_(self) -> str:
        """`describe()` as a small table, for notebooks."""
        facts = self.describe()
        speed = facts.pop("speed", {})
        rows = {**facts, **{f"speed: {name}": value for name, value in speed.items()}}
        rows.pop("object", None)
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(name))}</th>"
            f"<td style='text-align:left'>{html.escape(str(value))}</td></tr>"
            for name, value in rows.items()
        )
        return f"<table>{cells}</table>"

    def resolve(self, request: GenerationRequest, seed: int | None = None) -> ResolvedRequest:
        """The request with every default filled in (a random seed when it has none)."""
        parameters = request.parameters
        if seed is None:
            seed = parameters.seed if parameters.seed is not None else secrets.randbelow(RANDOM_SEED_LIMIT)
        start = parameters.audio_start_in_s or 0.0
        end = self.max_seconds if parameters.audio_end_in_s is None else parameters.audio_end_in_s
        if end - start > self.max_seconds:
            allowed = f"at most {self.max_seconds:.4f} seconds after audio_start_in_s for this model"
            raise InvalidParameters(
                f"parameters.audio_end_in_s: {end} is too long; {allowed}",
                field="parameters.audio_end_in_s",
                value=end,
                allowed=allowed,
            )
        return ResolvedRequest(
            prompt=request.inputs,
            negative_prompt=parameters.negative_prompt,
            audio_start_in_s=float(start),
            audio_end_in_s=float(end),
            num_inference_steps=parameters.num_inference_steps or DEFAULT_STEPS,
            guidance_scale=DEFAULT_GUIDANCE
            if parameters.guidance_scale is None
            else parameters.guidance_scale,
            seed=seed,
        )

    def generate(
        self,
        request: GenerationRequest,
        progress: Progress | None = None,
        *,
        source: Any = None,
        init_noise_level: float | None = None,
    ) -> GeneratedAudio:
        """Generate one request. Same seed, device and dtype: same samples.

        `progress(done, total)` is called after every denoising step (e.g. to drive a step bar).
        It may raise to stop the run (the queue does, when the caller has gone): the exception
        leaves the pipeline call.

        Audio-to-audio: `source` (a `Clip`, an audio file path, or a ``(samples, sample_rate)``
        pair) is where denoising starts, under `init_noise_level` of noise (else the request's
        ``init_noise_level``, else `DEFAULT_INIT_NOISE_LEVEL`; higher keeps less of the source).
        See `audio_to_audio`.
        """
        return self.variations(request, 1, progress, source=source, init_noise_level=init_noise_level)[0]

    def variations(
        self,
        request: GenerationRequest,
        count: int,
        progress: Progress | None = None,
        *,
        source: Any = None,
        init_noise_level: float | None = None,
    ) -> list[GeneratedAudio]:
        """`count` (1 to `MAX_VARIATIONS`) takes of one request in one pipeline call
        (``num_waveforms_per_prompt``); take k uses the request's seed + k.

        Each take records its seed, so it can be made again alone: in bf16 alone it is the same
        samples, in fp32 within 2e-8 (batched matrix products round differently; measured by
        bench/variations.py). Other arguments as `generate`.
        """
        check_count(count)
        resolved = self.resolve(request)
        seeds = [(resolved.seed + take) % (MAX_SEED + 1) for take in range(count)]
        waveform, level = self.check_source(request, source, init_noise_level)
        stamps: list[float] = []

        def timed(done: int, total: int) -> None:
            stamps.append(time.perf_counter())
            if progress is not None:
                progress(done, total)

        started = time.perf_counter()
        with self._lock, torch.inference_mode():
            clips = call_pipeline(self.pipeline, resolved, seeds, timed, waveform, level)
        finished = time.perf_counter()
        seconds = finished - started
        if len(stamps) >= 2:  # the first step also pays for encoding the prompt: timed from the second
            self.seconds_per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) / count
            self.decoding_seconds = (finished - stamps[-1]) / count
        check_output(clips, seeds, self.pipeline.transformer.dtype)
        return [
            GeneratedAudio(clip.numpy(), self.sample_rate, seed, seconds)
            for clip, seed in zip(clips, seeds, strict=True)
        ]

    def window(
        self, request: GenerationRequest, keep: Kept, progress: Progress | None = None
    ) -> tuple[torch.Tensor, np.ndarray]:
        """One whole window that keeps `keep`'s latent frames (see `keep`): its final latents
        (channels, frames) and their audio (channels, window samples), decoded by the VAE as the
        pipeline decodes. The request's length is ignored: a window is always the whole window."""
        resolved = self.resolve(request.with_parameters(audio_start_in_s=0.0, audio_end_in_s=None))
        with self._lock, torch.inference_mode():
            latents = call_pipeline(
                self.pipeline, resolved, [resolved.seed], progress, output_type="latent", keep=keep
            )
            vae = self.pipeline.vae
            audio = vae.decode(latents.to(vae.device, vae.dtype)).sample.float().cpu()
        check_output(audio, [resolved.seed], self.pipeline.transformer.dtype)
        return latents[0], audio[0].numpy()

    def expected_seconds(self, request: GenerationRequest, count: int = 1) -> float | None:
        """How long `count` takes of `request` should take on this device, from the last measured
        run (`seconds_per_step`); None before any. Every step runs on the model's whole window,
        whatever the clip's length, so only the steps and the takes count."""
        if self.seconds_per_step is None or self.decoding_seconds is None:
            return None
        steps = self.resolve(request, seed=0).num_inference_steps
        return count * (steps * self.seconds_per_step + self.decoding_seconds)

    def check_source(
        self, request: GenerationRequest, source: Any, init_noise_level: float | None = None
    ) -> tuple[np.ndarray | None, float | None]:
        """(stereo waveform at the model's rate, level) for audio-to-audio, (None, None) without a
        source; `InvalidParameters` for a bad source or level, or a level without a source.

        The level is `init_noise_level`, else the request's, else `DEFAULT_INIT_NOISE_LEVEL`.
        """
        if init_noise_level is None:
            init_noise_level = request.parameters.init_noise_level
        if source is None:
            if init_noise_level is not None:
                raise InvalidParameters(
                    "init_noise_level: applies to audio-to-audio only; pass a source too",
                    field="init_noise_level",
                    allowed="only with a source",
                )
            return None, None
        waveform = source_waveform(source, sample_rate=self.sample_rate, max_seconds=self.max_seconds)
        level = DEFAULT_INIT_NOISE_LEVEL if init_noise_level is None else init_noise_level
        return waveform, check_level(level, self.pipeline.scheduler)

    def warm_up(self) -> None:
        """Run a short generation at load: this compiles the transformer, checks that half precision
        gives finite audio and times a step (`seconds_per_step`). Falls back to eager, then to fp32,
        when either fails."""
        while not self._warm_up_once():
            pass

    def _warm_up_once(self) -> bool:
        request = GenerationRequest.build(
            "warm-up", num_inference_steps=WARM_UP_STEPS, seed=0, audio_end_in_s=1.0
        )
        try:
            with warnings.catch_warnings(category=SilentAudioWarning, action="ignore"):
                self.generate(request)  # two steps: a quiet start is not a fault
        except NonFiniteAudio:
            if self.options.dtype not in HALF_DTYPES:
                raise
            self.speed.fall_back(
                f"{dtype_name(self.options.dtype)} gave non-finite audio; using float32",
                dtype=torch.float32,
            )
            restore_weights(self.pipeline, self._original_weights)
            place_pipeline(self.pipeline, self.options, self.device)
            compile_transformer(self.pipeline.transformer, self.options)
            return False
        except Exception as exc:
            if not self.options.compile:
                raise
            self.speed.fall_back(
                f"torch.compile failed ({type(exc).__name__}: {exc}); running eagerly", compile=False
            )
            run_eagerly(self.pipeline.transformer)
            return False
        return True


def check_output(clips: torch.Tensor, seeds: list[int], dtype: torch.dtype) -> None:
    """Every generation's check of its audio (takes, channels, frames): NaN or infinite samples
    raise `NonFiniteAudio`; a silent take warns (`SilentAudioWarning`)."""
    if not torch.isfinite(clips).all():
        fix = (
            "half precision overflowed: load the model with load_generator(..., dtype='float32')"
            if dtype in HALF_DTYPES
            else "the weights or the request make the model diverge: try another seed or fewer steps"
        )
        raise NonFiniteAudio(f"the model gave NaN or infinite samples in {dtype_name(dtype)}; {fix}")
    for seed, clip in zip(seeds, clips.numpy(), strict=True):
        warn_if_silent(clip, f"the take of seed {seed}")


def call_pipeline(
    pipeline: Any,
    request: ResolvedRequest,
    seeds: list[int],
    progress: Progress | None = None,
    source: np.ndarray | None = None,
    init_noise_level: float | None = None,
    output_type: str = "pt",
    keep: Kept | None = None,
) -> torch.Tensor:
    """One call of the public `StableAudioPipeline.__call__`, one take per seed: float32 CPU audio
    (takes, channels, frames), or the final latents with ``output_type="latent"``.

    `source` (stereo at the model's rate, checked by `audio_to_audio.source_waveform`) makes it
    audio-to-audio, starting at `init_noise_level`. `keep` keeps those latent frames and
    generates the rest (`keep.keeping`; not with a source).
    """
    hooks: list = []

    def report(step: int, timestep: torch.Tensor, latents: torch.Tensor) -> None:
        for hook in hooks:
            hook(step, timestep, latents)
        if progress is not None:
            progress(step + 1, request.num_inference_steps)

    # The starting noise comes from these CPU generators, but the scheduler also seeds the noise of
    # every step from generator.initial_seed(), and torchsde draws it on the model's device: the same
    # seed repeats a clip on one device and dtype, not across devices (CPU against CUDA).
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    with ExitStack() as stack:
        extra = {}
        if source is not None:
            # Padded here to the model's window, as the pipeline would (without its warning).
            window = int(pipeline.transformer.config.sample_size) * pipeline.vae.hop_length
            padded = torch.from_numpy(np.pad(source, ((0, 0), (0, window - source.shape[1]))))
            extra = stack.enter_context(starting_at(pipeline, init_noise_level, generators))
            extra["initial_audio_waveforms"] = padded[None].to(pipeline.vae.device, pipeline.vae.dtype)
            extra["initial_audio_sampling_rate"] = pipeline.vae.config.sampling_rate
        if keep is not None:
            extra["latents"], write_kept = keeping(pipeline, keep, generators)
            hooks.append(write_kept)
        # `callback` (every `callback_steps` steps) is this pipeline's per-step hook in every
        # diffusers we support (0.40 to 0.42): unlike other pipelines it has no `callback_on_step_end`.
        output = pipeline(
            request.prompt,
            audio_start_in_s=request.audio_start_in_s,
            audio_end_in_s=request.audio_end_in_s,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt,
            num_waveforms_per_prompt=len(seeds),
            generator=generators,
            callback=None if progress is None and not hooks else report,
            callback_steps=1,
            output_type=output_type,
            **extra,
        )
    return output.audios.float().cpu()


def load_generator(
    model: str,
    *,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    token: str | None = None,
    options: SpeedOptions | None = None,
    **speed_overrides: Any,
) -> AudioGenerator:
    """Load a model by hub id, local folder, or ``"offline"`` (no network, random weights).

    Speed options: pass `options`, or overrides for `choose_speed_options` (``dtype="bf16"``,
    ``compile=True``, ``vae_tiling=True``...); the rest is chosen by device.
    """
    device = device or pick_device()
    options = options or choose_speed_options(device, dtype=dtype, **speed_overrides)
    offline = model == OFFLINE_MODEL_NAME or (Path(model).is_dir() and is_offline_folder(model))
    if model == OFFLINE_MODEL_NAME:
        pipeline = build_offline_pipeline()
    else:
        from diffusers import StableAudioPipeline

        from ..deploy.local import saved_hugging_face_token

        try:
            # Loaded in fp32 (the hub weights' dtype): the text encoder stays fp32, the rest is cast.
            pipeline = StableAudioPipeline.from_pretrained(
                model, dtype=torch.float32, token=token or saved_hugging_face_token()
            )
        except Exception as exc:  # hub errors come in many types; all mean "could not load"
            raise ModelLoadError(_load_hint(model, exc)) from None
    if offline:
        log.info(OFFLINE_NOTICE)  # the server prints it; a warning would be a stderr box in notebooks
    return AudioGenerator(pipeline, model_name=model, offline=offline, device=device, options=options)


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
