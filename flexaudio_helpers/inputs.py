"""What callers may pass as a generation request, turned into a validated `GenerationRequest`.

The client, batches and the CLI all accept a prompt string, a body dict
``{"inputs": ..., "parameters": {...}}`` or a `GenerationRequest`; this is the one place that
tells them apart.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidParameters
from .params import GenerationRequest


def as_request(item: Any, /, **parameters: Any) -> GenerationRequest:
    """A validated request from a prompt, a body dict or a `GenerationRequest` (plus parameters).

    Raises `InvalidParameters` (naming the field) when it is not a valid request.
    """
    if isinstance(item, str):
        return GenerationRequest.build(item, **parameters)
    if isinstance(item, GenerationRequest):
        request = item
    elif isinstance(item, dict):
        request = GenerationRequest.from_body(item)
    else:
        raise InvalidParameters(
            "a request must be a prompt string, a GenerationRequest or a body "
            f'{{"inputs": ..., "parameters": {{...}}}}, got {type(item).__name__}',
            field="body",
            value=item,
        )
    return request.with_parameters(**parameters) if parameters else request


def raw_body(item: Any) -> Any:
    """`item` as JSON can hold it, even when it is not a valid request (for a manifest line)."""
    if isinstance(item, GenerationRequest):
        return item.to_body()
    if isinstance(item, str):
        return {"inputs": item}
    try:
        json.dumps(item)
    except (TypeError, ValueError):
        return repr(item)
    return item
