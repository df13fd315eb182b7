"""Speed options for the local pipeline, chosen by device, each one overridable.

What each option does and why it keeps the output the same (within the dtype's tolerance):

- **Half precision** (CUDA: fp16, the diffusers recipe's choice; bf16 on request; MPS and CPU:
  fp32, see `default_dtype`). Only the DiT transformer and the VAE run in half precision: the T5 text encoder
  and the projection model run once per request and stay in fp32 (T5 is known to overflow in
  fp16); their output is cast to the transformer's dtype on its way out. The load-time warm-up
  checks that half precision gives finite audio; if not, the model goes back to fp32 and the
  reason is kept in `SpeedReport.fallbacks`.
- **SDPA attention**: diffusers' `StableAudioAttnProcessor2_0` already calls
  `torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient kernels on
  CUDA); we set it explicitly so a model saved with another processor still gets it.
- **torch.compile** of the transformer (off unless asked), in place, so the pipeline's own loop
  runs it too: compiled at load by a warm-up generation, so the first user request is not the
  slow one. If compiling fails (no C++ compiler, no Triton, an unsupported op), the transformer
  runs eagerly and the reason is kept. ``compile_mode="reduce-overhead"`` adds CUDA graphs.
- **VAE slicing** (decode one clip of a batch at a time: same output, less memory) on CUDA;
  **VAE tiling** and **model CPU offload** only on GPUs with little memory (tiling blends
  overlapping windows, so it may change the audio slightly).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import torch

log = logging.getLogger(__name__)

HALF_DTYPES = (torch.float16, torch.bfloat16)
DTYPE_NAMES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_NAMES.update({"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16})

# Below these amounts of GPU memory, save memory at some cost in speed (tiling can also
# change the audio slightly). The fp16 model is about 2.7 GB; a 47 s decode needs a few GB more.
TILING_BELOW_BYTES = 16 * 2**30
OFFLOAD_BELOW_BYTES = 8 * 2**30


def pick_device() -> str:
    """The best device here: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass(frozen=True)
class SpeedOptions:
    """How the pipeline runs. Build it with `choose_speed_options`; all fields are plain values."""

    dtype: torch.dtype = torch.float32
    compile: bool = False
    compile_mode: str | None = None  # torch.compile mode: None (default), "reduce-overhead", "max-autotune"
    compile_backend: Any = "inductor"
    vae_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False
    warm_up: bool = False  # one short generation at load (compiles, checks half precision, times a step)

    def describe(self) -> dict[str, Any]:
        """The options as JSON-friendly values (for `/v1/models` and the bench table)."""
        return {
            "dtype": dtype_name(self.dtype),
            "compile": self.compile,
            "compile_mode": self.compile_mode,
            "vae_slicing": self.vae_slicing,
            "vae_tiling": self.vae_tiling,
            "cpu_offload": self.cpu_offload,
        }


@dataclass
class SpeedReport:
    """What actually took effect: the options after fallbacks, and why each fallback happened."""

    options: SpeedOptions
    fallbacks: list[str] = field(default_factory=list)

    def fall_back(self, reason: str, **changes: Any) -> None:
        log.warning("speed option fallback: %s", reason)
        self.fallbacks.append(reason)
        self.options = replace(self.options, **changes)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """``"bf16"``, ``"float16"``... to a torch dtype; None or ``"auto"`` stays None (choose by device)."""
    if name is None or isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return None
    try:
        return DTYPE_NAMES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use auto, {', '.join(DTYPE_NAMES)}") from None


def default_dtype(device: str) -> torch.dtype:
    """fp16 on CUDA (the diffusers recipe; more mantissa than bf16, so closer to fp32); fp32 on the
    CPU and on Apple's MPS.

    MPS: nobody here has measured Stable Audio Open on a Mac, and the warm-up catches NaN and
    infinity, not noise. Half precision on MPS has turned other audio models' output into noise or
    NaN (k2-fsa/OmniVoice#172: fp16; OpenBMB/VoxCPM#263 and Comfy-Org/ComfyUI#15207 for Stable
    Audio 3's VAE: bf16), so fp32, at twice the memory (about 5 GB of weights; on a 16 GB Mac that
    can mean swapping, vibevoice-community/VibeVoice#65). ``dtype="float16"`` tries half precision.
    """
    return torch.float16 if device.startswith("cuda") else torch.float32


def gpu_memory_bytes(device: str) -> int | None:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    return None


def choose_speed_options(
    device: str,
    *,
    dtype: str | torch.dtype | None = None,
    compile: bool | None = None,
    compile_mode: str | None = None,
    vae_slicing: bool | None = None,
    vae_tiling: bool | None = None,
    cpu_offload: bool | None = None,
    warm_up: bool | None = None,
    memory_bytes: int | None = None,
) -> SpeedOptions:
    """The best options for `device`; any argument that is not None overrides the automatic choice."""
    cuda = device.startswith("cuda")
    memory = memory_bytes if memory_bytes is not None else gpu_memory_bytes(device)
    memory_known = cuda and memory is not None
    chosen_dtype = parse_dtype(dtype) or default_dtype(device)
    compile = bool(compile)
    return SpeedOptions(
        dtype=chosen_dtype,
        compile=compile,
        compile_mode=compile_mode,
        vae_slicing=cuda if vae_slicing is None else vae_slicing,
        vae_tiling=(memory_known and memory < TILING_BELOW_BYTES) if vae_tiling is None else vae_tiling,
        cpu_offload=(memory_known and memory < OFFLOAD_BELOW_BYTES) if cpu_offload is None else cpu_offload,
        # GPUs: the first call pays for kernel selection, and it measures the time per step before a
        # long run (MPS can take minutes: Stability-AI/stable-audio-tools#181); compile and half
        # precision need checking.
        warm_up=(device != "cpu" or compile or chosen_dtype in HALF_DTYPES) if warm_up is None else warm_up,
    )


def cast_module(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast in place. `torch.nn.Module.to` skips diffusers' warning about fp32-only modules,
    which the Stable Audio classes do not have."""
    if getattr(module, "_keep_in_fp32_modules", None):
        module.to(dtype=dtype)
    else:
        torch.nn.Module.to(module, dtype=dtype)


HALF_PRECISION_COMPONENTS = ("transformer", "vae")


def full_precision_copy(pipeline: Any) -> dict[str, dict[str, torch.Tensor]]:
    """CPU copies of the weights that `place_pipeline` casts to half precision."""
    return {
        name: {
            key: value.detach().to("cpu", copy=True)
            for key, value in getattr(pipeline, name).state_dict().items()
        }
        for name in HALF_PRECISION_COMPONENTS
    }


def restore_weights(pipeline: Any, weights: dict[str, dict[str, torch.Tensor]] | None) -> None:
    """Put back the weights saved by `full_precision_copy` (in fp32), e.g. after fp16 overflowed."""
    if weights is None:
        raise RuntimeError("no full-precision copy of the weights was kept; reload the model in float32")
    for name, state in weights.items():
        module = getattr(pipeline, name)
        cast_module(module, torch.float32)
        module.load_state_dict(state)


def place_pipeline(pipeline: Any, options: SpeedOptions, device: str) -> None:
    """Put the components on `device` in their dtypes and switch on attention, VAE and offload options."""
    from diffusers.models.attention_processor import StableAudioAttnProcessor2_0

    cast_module(pipeline.text_encoder, torch.float32)
    cast_module(pipeline.projection_model, torch.float32)
    cast_module(pipeline.transformer, options.dtype)
    cast_module(pipeline.vae, options.dtype)
    pipeline.transformer.set_attn_processor(StableAudioAttnProcessor2_0())
    if options.vae_slicing:
        pipeline.vae.enable_slicing()
    else:
        pipeline.vae.disable_slicing()
    if options.vae_tiling:
        pipeline.vae.enable_tiling()
    else:
        pipeline.vae.disable_tiling()
    if options.cpu_offload and device.startswith("cuda"):
        pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline.to(device)


def hand_conditioning_to_transformer(pipeline: Any) -> None:
    """Make the (fp32) projection model's outputs leave it in the transformer's dtype: the pipeline
    passes them straight to the transformer and draws its latents in their dtype, so a half-precision
    transformer would get fp32 inputs and fail. Call once per pipeline."""

    def cast_to_transformer_dtype(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
        dtype = pipeline.transformer.dtype  # read at each call: a fallback to fp32 changes it
        return type(output)(**{name: value.to(dtype) for name, value in output.items()})

    pipeline.projection_model.register_forward_hook(cast_to_transformer_dtype)


def compile_transformer(transformer: torch.nn.Module, options: SpeedOptions) -> None:
    """Compile the transformer in place when asked, so the pipeline's own loop runs the compiled
    one. Compilation happens lazily, at the first call (warm-up)."""
    if options.compile:
        transformer.compile(mode=options.compile_mode, backend=options.compile_backend)


def run_eagerly(transformer: torch.nn.Module) -> None:
    """Undo `compile_transformer`. torch has no public "uncompile"; a disabled torch.compile is
    documented as a no-op, so the module's calls go straight to its plain forward again."""
    transformer.compile(backend="eager", disable=True)
