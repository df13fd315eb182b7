"""The one parameter model shared by the client and the server.

A FlexServe text-to-audio request body is ``{"inputs": prompt, "parameters": {...}}``; the
parameter names are diffusers' `StableAudioPipeline` keywords plus ``seed``. Both sides
validate with `GenerationRequest`, so an error means the same thing everywhere, and
`GenerationRequest.to_body()` gives exactly the JSON of the FlexAI tutorial's examples.

Two fields are this project's extension, not FlexServe's (FlexAI's FlexServe and vLLM-Omni do not
document audio-to-audio): ``init_audio`` (a source clip, as `init_audio` encodes it) and
``init_noise_level``. Only our local endpoint accepts them, and says so in ``GET /v1/models``
(``"extensions": ["init_audio"]``); in this process they are `inprocess.generate_here`'s arguments.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .errors import InvalidParameters
from .protocol import sniff_format

MODEL_ID = "stabilityai/stable-audio-open-1.0"
TASK = "text-to-audio"  # what FlexServe and our server are told to serve (--task)
SAMPLE_RATE = 44_100
CHANNELS = 2
# transformer.sample_size (latent frames) * VAE hop length / sample rate = 47.5545 s.
MAX_AUDIO_SECONDS = 1024 * 2048 / SAMPLE_RATE
# One latent frame (2048 samples, 0.0464 s): anything shorter would run a whole generation for 0 frames.
MIN_AUDIO_SECONDS = 2048 / SAMPLE_RATE
MAX_STEPS = 1000
DEFAULT_STEPS = 100  # the pipeline's own default, filled in where a request leaves it out
MAX_GUIDANCE = 50.0
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts unsigned 64-bit seeds
RANDOM_SEED_LIMIT = 2**31  # drawn seeds stay small enough for JavaScript and spreadsheets
MAX_PROMPT_CHARS = 2000  # T5 reads 128 tokens; the cap only guards the server
# The parameters a sweep can vary, and how to read the values typed for them.
SWEEPABLE = {"guidance_scale": float, "num_inference_steps": int, "seed": int}
MAX_VARIATIONS = 8  # takes of one request per call; in one pipeline call each holds a 47.55 s window
# Audio-to-audio (our extension): the scheduler's sigma range, CosineDPMSolverMultistepScheduler's
# config in Stable Audio Open 1.0 (sigma_min 0.3, sigma_max 500); 1.0 keeps the source's shape.
MIN_INIT_NOISE_LEVEL = 0.3  # excluded: the schedule cannot start at its own end
MAX_INIT_NOISE_LEVEL = 500.0
DEFAULT_INIT_NOISE_LEVEL = 1.0
# 47.55 s of 16-bit stereo at 48 kHz is 9.1 MB as WAV or FLAC (what the client sends, see
# `init_audio`); the base64 text is 4/3 of that.
MAX_INIT_AUDIO_BYTES = 10 * 2**20
MAX_INIT_AUDIO_CHARS = 4 * -(-MAX_INIT_AUDIO_BYTES // 3)
MAX_KEEP_RANGES = 8  # kept stretches of one window (extend keeps 1, repaint 2)

# What each field accepts, in words, for error messages (and the explorer's tooltips).
ALLOWED = {
    "inputs": f"a non-empty prompt of at most {MAX_PROMPT_CHARS} characters",
    "audio_end_in_s": f"seconds, from {MIN_AUDIO_SECONDS:.4f} (one latent frame) to {MAX_AUDIO_SECONDS:.4f}",
    "audio_length_in_s": f"seconds, from {MIN_AUDIO_SECONDS:.4f} (one latent frame) to "
    f"{MAX_AUDIO_SECONDS:.4f} (alias of audio_end_in_s)",
    "audio_start_in_s": f"seconds, at least 0 and at least {MIN_AUDIO_SECONDS:.4f} below audio_end_in_s",
    "num_inference_steps": f"an integer from 1 to {MAX_STEPS}",
    "guidance_scale": f"a number from 0 to {MAX_GUIDANCE:g}",
    "negative_prompt": f"text of at most {MAX_PROMPT_CHARS} characters",
    "seed": f"an integer from 0 to {MAX_SEED} (2**64 - 1)",
    "init_audio": f"a WAV or FLAC file of at most {MAX_INIT_AUDIO_BYTES} bytes (10 MiB), as base64, "
    f"at most {MAX_AUDIO_SECONDS:.2f} s long (our local endpoint's extension)",
    "init_noise_level": f"a number above {MIN_INIT_NOISE_LEVEL:g} (the scheduler's sigma_min) up to "
    f"{MAX_INIT_NOISE_LEVEL:g} (its sigma_max), with init_audio",
    "count": f"an integer from 1 to {MAX_VARIATIONS}",
    "keep_ranges": f"1 to {MAX_KEEP_RANGES} [start, end] pairs of seconds, 0 <= start < end <= "
    f"{MAX_AUDIO_SECONDS:.4f}, of init_audio to keep in the window (our local endpoint's extension; "
    "not with init_noise_level)",
}
EXTENSION_NOTE = (
    "flexaudio extension, accepted by this project's local endpoint only (its GET /v1/models lists "
    "'init_audio' under 'extensions'); not part of FlexAI's FlexServe API. "
)


class GenerationParameters(BaseModel):
    """The ``parameters`` object. A field left as None means "the server's default"."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    audio_end_in_s: float | None = Field(None, ge=MIN_AUDIO_SECONDS, le=MAX_AUDIO_SECONDS)
    audio_start_in_s: float | None = Field(None, ge=0, lt=MAX_AUDIO_SECONDS)
    num_inference_steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    guidance_scale: float | None = Field(None, ge=0, le=MAX_GUIDANCE)
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    init_audio: str | None = Field(
        None,
        max_length=MAX_INIT_AUDIO_CHARS,
        description=EXTENSION_NOTE + "Audio-to-audio: the source clip, " + ALLOWED["init_audio"] + ".",
    )
    init_noise_level: float | None = Field(
        None,
        gt=MIN_INIT_NOISE_LEVEL,
        le=MAX_INIT_NOISE_LEVEL,
        description=EXTENSION_NOTE
        + f"Noise added to the source (default {DEFAULT_INIT_NOISE_LEVEL:g}; higher keeps less of it): "
        + ALLOWED["init_noise_level"]
        + ".",
    )

    keep_ranges: list[list[float]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_KEEP_RANGES,
        description="flexaudio extension, accepted by this project's local endpoint only (its GET "
        "/v1/models lists 'keep_ranges' under 'extensions'): the answer is one whole window that keeps "
        "these stretches of init_audio and generates the rest (extend, loop and repaint chain such "
        "windows): " + ALLOWED["keep_ranges"] + ".",
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_length_alias(cls, data: Any) -> Any:
        # The tutorial's parameter list says audio_length_in_s; the pipeline only knows
        # audio_end_in_s, so translate it once here and send the real name.
        if not isinstance(data, dict) or "audio_length_in_s" not in data:
            return data
        if "audio_end_in_s" in data:
            raise PydanticCustomError(
                "alias_conflict",
                "give audio_end_in_s or its alias audio_length_in_s, not both",
                {"field": "audio_length_in_s"},
            )
        warnings.warn(
            "audio_length_in_s is not a StableAudioPipeline parameter; sending it as audio_end_in_s",
            UserWarning,
            stacklevel=2,
        )
        data = dict(data)
        data["audio_end_in_s"] = data.pop("audio_length_in_s")
        return data

    @field_validator("audio_start_in_s")
    @classmethod
    def _start_before_end(cls, start: float | None, info) -> float | None:
        end = info.data.get("audio_end_in_s")
        if start is not None and end is not None and end - start < MIN_AUDIO_SECONDS:
            raise PydanticCustomError(
                "start_after_end",
                "audio_start_in_s ({start}) must be at least one latent frame ({frame:.4f} s) below "
                "audio_end_in_s ({end})",
                {"start": start, "end": end, "frame": MIN_AUDIO_SECONDS},
            )
        return start

    @field_validator("keep_ranges")
    @classmethod
    def _ranges_inside_the_window(cls, ranges: list[list[float]] | None, info) -> list[list[float]] | None:
        for pair in ranges or []:
            if len(pair) != 2 or not 0 <= pair[0] < pair[1] <= MAX_AUDIO_SECONDS:
                raise PydanticCustomError(
                    "bad_range", "{pair} is not a range inside the window", {"pair": pair}
                )
        if ranges is not None and info.data.get("init_noise_level") is not None:
            raise PydanticCustomError("keep_with_level", "keep_ranges does not take init_noise_level")
        return ranges

    @model_validator(mode="after")
    def _ranges_need_audio(self) -> GenerationParameters:
        if self.keep_ranges is not None and self.init_audio is None:
            raise PydanticCustomError(
                "keep_without_audio",
                "keep_ranges needs init_audio, the audio to keep",
                {"field": "keep_ranges"},
            )
        return self

    @field_validator("init_audio")
    @classmethod
    def _init_audio_is_a_file(cls, text: str | None) -> str | None:
        # Only the start is decoded here (the magic bytes); the local endpoint decodes the rest.
        if text is None:
            return None
        try:
            head = base64.b64decode(text[:16], validate=True)
        except (binascii.Error, ValueError):
            raise PydanticCustomError("not_base64", "it is not base64 text") from None
        if sniff_format(head) not in ("WAV", "FLAC"):
            raise PydanticCustomError("not_wav_or_flac", "it does not start like a WAV or FLAC file")
        return text


class GenerationRequest(BaseModel):
    """A whole request body: the prompt (``inputs``) and its `GenerationParameters`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    inputs: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    parameters: GenerationParameters = Field(default_factory=GenerationParameters)

    @field_validator("inputs")
    @classmethod
    def _prompt_has_text(cls, prompt: str) -> str:
        if not prompt.strip():
            raise PydanticCustomError("blank_prompt", "the prompt is only whitespace")
        return prompt

    @classmethod
    def from_body(cls, body: Any) -> GenerationRequest:
        """Validate a decoded JSON body, raising `InvalidParameters` that names the field."""
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise invalid_parameters_from(exc) from None

    @classmethod
    def build(cls, prompt: str, **parameters: Any) -> GenerationRequest:
        """Make a request from a prompt and keyword parameters, e.g. ``seed=42``."""
        return cls.from_body({"inputs": prompt, "parameters": parameters})

    def to_body(self) -> dict[str, Any]:
        """The JSON body to POST: only the parameters that were set, by their real names."""
        return self.model_dump(exclude_none=True)

    def with_parameters(self, **changes: Any) -> GenerationRequest:
        """A copy with some parameters changed (validated again); None removes one."""
        return self.build(self.inputs, **{**self.parameters.model_dump(exclude_none=True), **changes})

    def for_source(self, has_source: bool) -> GenerationRequest:
        """This request as audio-to-audio runs it: with a source, its ``init_noise_level`` (the
        default filled in); without one, refused if it sets a level (`InvalidParameters`)."""
        level = self.parameters.init_noise_level
        if has_source:
            return (
                self if level is not None else self.with_parameters(init_noise_level=DEFAULT_INIT_NOISE_LEVEL)
            )
        if level is not None:
            raise InvalidParameters(
                f"parameters.init_noise_level={level} applies to audio-to-audio only: give init_audio too",
                field="parameters.init_noise_level",
                value=level,
                allowed=ALLOWED["init_noise_level"],
            )
        return self


def check_count(count: Any) -> int:
    """`count` if it is a number of variations allowed per call, else `InvalidParameters`."""
    if type(count) is not int or not 1 <= count <= MAX_VARIATIONS:
        allowed = ALLOWED["count"]
        raise InvalidParameters(
            f"count: {count!r} variations is not allowed; allowed: {allowed}",
            field="count",
            value=count,
            allowed=allowed,
        )
    return count


# vLLM-Omni's Stable Audio request (vllm-project/vllm-omni, vllm_omni/entrypoints/openai/protocol/
# audio.py, commit 0131cb5560450800b800e889fb849ea2c851bd3f) gives a length from a start, not an end,
# and a signed 64-bit seed; its server hands audio_start + audio_length to the pipeline as
# audio_end_in_s (serving_audio_generate.py, commit 2fbb42fd33843cabf3432929ab65262dadd8d3d3).
VLLM_OMNI_MAX_SEED = 2**63 - 1
VLLM_OMNI_ALLOWED_SEED = f"an integer from 0 to {VLLM_OMNI_MAX_SEED} (2**63 - 1) on vLLM-Omni"


def vllm_omni_body(request: GenerationRequest) -> dict[str, Any]:
    """`request` as the generation fields of a vLLM-Omni ``POST /v1/audio/generate`` body.

    The prompt becomes ``input`` and ``audio_end_in_s`` becomes ``audio_length`` (end minus start)
    beside ``audio_start``; the other fields keep their names. Raises `InvalidParameters` for what
    that API cannot say: a seed over 2**63 - 1, or ``audio_start_in_s`` without ``audio_end_in_s``
    (vLLM-Omni applies a start only together with a length).
    """
    parameters = request.parameters
    if parameters.seed is not None and parameters.seed > VLLM_OMNI_MAX_SEED:
        raise InvalidParameters(
            f"parameters.seed={parameters.seed} is not allowed; allowed: {VLLM_OMNI_ALLOWED_SEED}",
            field="parameters.seed",
            value=parameters.seed,
            allowed=VLLM_OMNI_ALLOWED_SEED,
        )
    for name in ("init_audio", "init_noise_level", "keep_ranges"):
        if getattr(parameters, name) is not None:
            raise InvalidParameters(
                f"parameters.{name}: audio-to-audio runs on this project's local endpoint (or in this "
                "process) only; vLLM-Omni's audio API does not document it",
                field=f"parameters.{name}",
                allowed=ALLOWED[name],
            )
    start, end = parameters.audio_start_in_s, parameters.audio_end_in_s
    if start is not None and end is None:
        raise InvalidParameters(
            f"parameters.audio_start_in_s={start} needs audio_end_in_s on vLLM-Omni: it applies a start "
            "only together with a length (audio_length = audio_end_in_s - audio_start_in_s)",
            field="parameters.audio_start_in_s",
            value=start,
            allowed=ALLOWED["audio_start_in_s"],
        )
    body: dict[str, Any] = {"input": request.inputs}
    if end is not None:
        body["audio_length"] = end - (start or 0.0)
        if start is not None:
            body["audio_start"] = start
    for name in ("negative_prompt", "guidance_scale", "num_inference_steps", "seed"):
        value = getattr(parameters, name)
        if value is not None:
            body[name] = value
    return body


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (ending in ``...`` when cut), for messages and labels."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_repr(value: Any, limit: int = 60) -> str:
    return shorten(repr(value), limit)


# pydantic error types that only say a value is past a bound, which ALLOWED already states.
OUT_OF_RANGE = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "string_too_short",
        "string_too_long",
    }
)


def _describe(error: dict[str, Any]) -> tuple[str, str, Any]:
    """Turn one pydantic error into (dotted field, message, value)."""
    location = [str(part) for part in error["loc"]]
    context = error.get("ctx") or {}
    value = error.get("input")
    if "field" in context:  # errors raised by our own model validators name their field
        location.append(context["field"])
        value = value.get(context["field"]) if isinstance(value, dict) else value
    field = ".".join(location) or "body"
    name = location[-1] if location else "body"

    if error["type"] == "extra_forbidden":
        siblings = GenerationParameters if len(location) > 1 else GenerationRequest
        allowed = sorted(siblings.model_fields)
        if siblings is GenerationParameters:
            allowed.append("audio_length_in_s")
        return field, f"unknown parameter {name!r}; allowed names: {', '.join(allowed)}", value
    if error["type"] == "missing":
        return field, f"{field} is required: {ALLOWED.get(name, 'a value')}", None
    if error["type"] in ("model_type", "dict_type"):
        what = "a JSON object" if name != "body" else 'a JSON object {"inputs": ..., "parameters": {...}}'
        return field, f"{field} must be {what}, got {_short_repr(value)}", value
    allowed = ALLOWED.get(name)
    message = f"{field}={_short_repr(value)} is not allowed"
    if not (allowed and error["type"] in OUT_OF_RANGE):  # pydantic's bound repeats the allowed range
        message += f" ({error['msg']})"
    if allowed:
        message += f"; allowed: {allowed}"
    return field, message, value


def invalid_parameters_from(exc: ValidationError) -> InvalidParameters:
    """Convert pydantic's error into ours: every problem listed, the first one named."""
    problems = [_describe(error) for error in exc.errors()]
    field, _, value = problems[0]
    name = field.rsplit(".", 1)[-1]
    text = "; ".join(problem[1] for problem in problems)
    return InvalidParameters(
        text,
        field=field,
        value=value,
        allowed=ALLOWED.get(name),
        problems=[(problem[0], problem[1]) for problem in problems],
    )
