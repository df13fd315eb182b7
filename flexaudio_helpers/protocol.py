"""The FlexServe text-to-audio wire format, shared by our client, our local endpoint and deploy.

``POST {url}/v1/audios/generations`` with ``Authorization: Bearer <key>`` and a JSON body
``{"inputs": ..., "parameters": {...}}`` (see `params.GenerationRequest`); the response body is
the audio file itself, recognised by its magic bytes (`sniff_format`). Errors from our endpoint
are ``{"error": {"message", "type", "param"}}``. Also here: the environment variables that name
an endpoint and its keys.
"""

from __future__ import annotations

import json
from typing import Any

# The tutorial's endpoint, as FlexAI's docs name it: read by the client, the CLI and deploy.
INFERENCE_URL_ENV = "INFERENCE_URL"
INFERENCE_API_KEY_ENV = "INFERENCE_API_KEY"
# The key our own local server (python -m flexaudio_helpers.serving) requires: a different
# variable, so that starting a local server never picks up a FlexAI endpoint's key by accident.
LOCAL_SERVER_KEY_ENV = "FLEXAUDIO_API_KEY"

GENERATIONS_ROUTE = "/v1/audios/generations"
MODELS_ROUTE = "/v1/models"
HEALTH_ROUTE = "/health"

# The other API the client speaks (`apis`): vLLM-Omni's Stable Audio route, and the variable that
# chooses an API beside INFERENCE_URL ("flexserve", "vllm-omni" or "auto").
VLLM_OMNI_AUDIO_ROUTE = "/v1/audio/generate"
INFERENCE_API_ENV = "INFERENCE_API"

# Facts our endpoint adds as response headers (FlexAI's FlexServe may not send them).
SEED_HEADER = "X-Seed"
GENERATION_SECONDS_HEADER = "X-Generation-Seconds"
QUEUE_SECONDS_HEADER = "X-Queue-Seconds"
OFFLINE_HEADER = "X-Offline-Model"  # "true" when the audio is noise from random weights

# Our own additions to the FlexServe API, listed under "extensions" in our GET /v1/models cards:
# "init_audio" is audio-to-audio (parameters.init_audio and init_noise_level; see `init_audio`).
INIT_AUDIO_EXTENSION = "init_audio"
# "keep_ranges" is one window keeping stretches of init_audio (`longer` chains such windows).
KEEP_RANGES_EXTENSION = "keep_ranges"
EXTENSIONS = (INIT_AUDIO_EXTENSION, KEEP_RANGES_EXTENSION)


# How deep a request body or a manifest line may nest: they need three levels. Hundreds of levels
# parse, then exhaust the stack of whatever reads the value next (repr, validation).
MAX_JSON_DEPTH = 32


def load_json(text: str | bytes) -> Any:
    """`json.loads` for a body or a line from outside; `ValueError` (saying why) for text that is
    not JSON, or JSON nested over `MAX_JSON_DEPTH` levels."""
    too_deep = f"JSON nested too deeply (over {MAX_JSON_DEPTH} levels)"
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(too_deep) from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    level, depth = [value], 0
    while level := [item for item in level if isinstance(item, dict | list)]:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise ValueError(too_deep)
        level = [child for item in level for child in (item.values() if isinstance(item, dict) else item)]
    return value


def error_body(message: str, error_type: str, param: str | None = None) -> dict:
    """The JSON error object our endpoint returns."""
    return {"error": {"message": message, "type": error_type, "param": param}}


# What a bearer key may hold: visible ASCII (RFC 6750's b64token and the other visible characters);
# anything else cannot travel in an HTTP header.
KEY_CHARACTERS = frozenset(chr(code) for code in range(0x21, 0x7F))


def key_header_problem(api_key: str) -> str | None:
    """Why `api_key` cannot be sent in an HTTP header (which character, never the key), or None."""
    bad = [index for index, character in enumerate(api_key) if character not in KEY_CHARACTERS]
    if not bad:
        return None
    position = f"character {bad[0] + 1} of {len(api_key)}"
    return f"the API key cannot be sent in an HTTP header: {position} is not visible ASCII"


def check_api_key(api_key: str) -> None:
    """The server's check: raise ValueError (without the key) unless it can travel as a bearer token."""
    if not api_key:
        raise ValueError("the endpoint needs a non-empty API key")
    problem = key_header_problem(api_key)
    if problem:
        raise ValueError(f"{problem} (use letters, digits and punctuation, e.g. secrets.token_urlsafe(32))")


# Shown wherever an offline clip appears (player, CLI, analysis, plots).
OFFLINE_NOTICE = "offline model: this is noise from random weights, not music"

# Magic bytes of the formats an endpoint may answer with; the Content-Type is not trusted.
AUDIO_MAGIC = {
    b"RIFF": "WAV",  # and "WAVE" at byte 8: other RIFF files (AVI, WebP) are not audio
    b"fLaC": "FLAC",
    b"OggS": "OGG",
    b"ID3": "MP3",
}


def sniff_format(data: bytes) -> str | None:
    """The audio format the bytes start with (WAV, FLAC, OGG, MP3), or None."""
    if data[:4] == b"RIFF" and data[8:12] != b"WAVE":
        return None
    for magic, name in AUDIO_MAGIC.items():
        if data.startswith(magic):
            return name
    # An MPEG audio frame without an ID3 tag starts with an 11-bit frame sync.
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "MP3"
    return None
