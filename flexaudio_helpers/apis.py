"""The two generation APIs the client speaks: FlexServe's and vLLM-Omni's Stable Audio API.

Both take the shared `params.GenerationRequest` and answer with the audio file itself; they
differ in route and body:

- ``flexserve`` (FlexAI's FlexServe runtime, and our local endpoint): ``POST /v1/audios/generations``
  with ``{"inputs": ..., "parameters": {...}}`` (`GenerationRequest.to_body`).
- ``vllm-omni`` (``vllm-omni serve stabilityai/stable-audio-open-1.0 --omni``): ``POST /v1/audio/generate``
  with ``{"input", "audio_length", "audio_start", ..., "response_format"}`` (`params.vllm_omni_body`),
  answered as WAV, FLAC or MP3.

The API is chosen, never guessed: ``AudioClient(url, api="vllm-omni")``, or ``INFERENCE_API`` beside
``INFERENCE_URL``; FlexServe when neither says. ``"auto"`` reads ``GET /v1/models`` and accepts only
an answer that shows one API (`detect`). A 404 on a generation route names the other API and how to
choose it (`not_found_advice`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import EndpointNotConfigured
from .params import MAX_SEED, VLLM_OMNI_MAX_SEED, GenerationRequest, vllm_omni_body
from .protocol import GENERATIONS_ROUTE, INFERENCE_API_ENV, INFERENCE_URL_ENV, VLLM_OMNI_AUDIO_ROUTE

FLEXSERVE = "flexserve"
VLLM_OMNI = "vllm-omni"
AUTO = "auto"  # detect the API from GET /v1/models
CHOICES = (FLEXSERVE, VLLM_OMNI, AUTO)
# vLLM-Omni's response formats that `audio.decode_audio` reads (its "pcm" is headerless samples and
# "opus" is not decoded here).
RESPONSE_FORMATS = ("wav", "flac", "mp3")


@dataclass(frozen=True)
class FlexServe:
    """FlexServe's text-to-audio API (FlexAI's endpoints and our local endpoint)."""

    name: ClassVar[str] = FLEXSERVE
    label: ClassVar[str] = "FlexServe"
    route: ClassVar[str] = GENERATIONS_ROUTE
    serves: ClassVar[str] = "a FlexServe endpoint (FlexAI, or this project's local server)"
    max_seed: ClassVar[int] = MAX_SEED
    # Our endpoint answers with the seed it used (X-Seed); a clip records that one.
    seed_from_header: ClassVar[bool] = True

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body to POST to `route`."""
        return request.to_body()


@dataclass(frozen=True)
class VllmOmni:
    """vLLM-Omni's Stable Audio API, asking for audio in `response_format` (wav, flac or mp3).

    Raises `ValueError` for another format.
    """

    response_format: str = "wav"
    name: ClassVar[str] = VLLM_OMNI
    label: ClassVar[str] = "vLLM-Omni"
    route: ClassVar[str] = VLLM_OMNI_AUDIO_ROUTE
    serves: ClassVar[str] = "a vLLM-Omni server (vllm-omni serve ... --omni)"
    max_seed: ClassVar[int] = VLLM_OMNI_MAX_SEED
    # vLLM-Omni documents no seed header: a clip records the seed it asked for.
    seed_from_header: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.response_format not in RESPONSE_FORMATS:
            allowed = ", ".join(RESPONSE_FORMATS)
            raise ValueError(f"response_format={self.response_format!r} is not allowed: use one of {allowed}")

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body to POST to `route`; `InvalidParameters` for what vLLM-Omni cannot express."""
        return {**vllm_omni_body(request), "response_format": self.response_format}


Api = FlexServe | VllmOmni
BY_NAME: dict[str, type[FlexServe] | type[VllmOmni]] = {FLEXSERVE: FlexServe, VLLM_OMNI: VllmOmni}


def how_to_choose(name: str) -> str:
    """How a learner picks the API `name`: in Python, in the environment, on the command line."""
    return (
        f"AudioClient(url, api={name!r}), or {INFERENCE_API_ENV}={name} beside {INFERENCE_URL_ENV} "
        f"(command line: flexaudio ... --api {name})"
    )


def choose(api: str | Api | None, from_environment: str | None = None) -> Api | None:
    """The API asked for: `api`, else the value of ``INFERENCE_API``, else FlexServe.

    None means ``"auto"``: detect it from ``GET /v1/models`` (`detect`). Raises
    `EndpointNotConfigured` for a name that is not one of `CHOICES`.
    """
    if isinstance(api, FlexServe | VllmOmni):
        return api
    given = api if api is not None else from_environment
    name = (given or FLEXSERVE).strip().lower()
    if name == AUTO:
        return None
    if name not in BY_NAME:
        where = "api=" if api is not None else f"{INFERENCE_API_ENV}="
        raise EndpointNotConfigured(
            f"{where}{given!r} is not an API this client speaks: use one of {', '.join(CHOICES)}"
        )
    return BY_NAME[name]()


def detect(models: Any) -> Api:
    """The API a ``GET /v1/models`` answer shows, when it shows exactly one.

    vLLM's model cards say ``"owned_by": "vllm"`` (``ModelCard`` in vllm-project/vllm,
    ``vllm/entrypoints/openai/engine/protocol.py``, the cards vLLM-Omni's ``/v1/models`` lists); our
    endpoint's say ``"task": "text-to-audio"`` (`serving.pipeline`). Raises `EndpointNotConfigured`,
    naming both choices, for any other answer (FlexAI's FlexServe does not document its own).
    """
    cards = models.get("data") if isinstance(models, dict) else None
    found = set()
    for card in cards if isinstance(cards, list) else []:
        if isinstance(card, dict) and card.get("owned_by") == "vllm":
            found.add(VLLM_OMNI)
        elif isinstance(card, dict) and card.get("task") == "text-to-audio":
            found.add(FLEXSERVE)
        else:
            found.add(None)
    if len(found) == 1 and None not in found:
        return BY_NAME[found.pop()]()
    raise EndpointNotConfigured(
        "cannot tell from GET /v1/models which API this endpoint speaks; choose it: "
        f"{how_to_choose(FLEXSERVE)} for FlexServe, or {how_to_choose(VLLM_OMNI)} for vLLM-Omni"
    )


def not_found_advice(api: Api) -> str:
    """What to add to a 404 on `api`'s generation route: the API tried, and how to choose the other."""
    other = BY_NAME[VLLM_OMNI if api.name == FLEXSERVE else FLEXSERVE]
    return (
        f" This client spoke {api.label}'s API (POST {api.route}); if the endpoint is {other.serves}, "
        f"choose its API: {how_to_choose(other.name)}."
    )
