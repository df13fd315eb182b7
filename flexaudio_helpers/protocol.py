"""The FlexServe text-to-audio wire format, shared by our client and our local endpoint.

``POST {url}/v1/audios/generations`` with ``Authorization: Bearer <key>`` and a JSON body
``{"inputs": ..., "parameters": {...}}`` (see `params.GenerationRequest`); the response body is
the audio file itself. Errors from our endpoint are ``{"error": {"message", "type", "param"}}``.
"""

from __future__ import annotations

GENERATIONS_ROUTE = "/v1/audios/generations"
MODELS_ROUTE = "/v1/models"
HEALTH_ROUTE = "/health"

# Facts our endpoint adds as response headers (FlexAI's FlexServe may not send them).
SEED_HEADER = "X-Seed"
GENERATION_SECONDS_HEADER = "X-Generation-Seconds"
QUEUE_SECONDS_HEADER = "X-Queue-Seconds"
OFFLINE_HEADER = "X-Offline-Model"  # "true" when the audio is noise from random weights


def error_body(message: str, error_type: str, param: str | None = None) -> dict:
    """The JSON error object our endpoint returns."""
    return {"error": {"message": message, "type": error_type, "param": param}}
