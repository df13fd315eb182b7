"""Keeping secrets out of what is shown: masked command lines, CLI output and JSON.

FlexAI prints an endpoint's API key once, on a line like ``API Key: <key>``. Anything we show
(commands, CLI output, ``inspect`` JSON, errors) goes through these functions first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

# "API Key: 1b2c...", "api-key = ...", "│ API Key │ ... │": the official scripts take what follows the colon.
API_KEY_LINE = re.compile(r"(?i)(api[\s_-]?key\b[^:=\n]*[:=][ \t]*)([^\s│|]+)")
# A UUID standing alone, not inside a host name like inference-<uuid>-1a2b3c4d.platform.flex.ai.
LONE_UUID = re.compile(
    r"(?<![\w-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-])"
)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# JSON keys whose values are secrets wherever they appear in inspect output.
SECRET_KEY_NAME = re.compile(r"(?i)(api[_-]?key|token|secret|password|authorization|credential)")


def strip_ansi(text: str) -> str:
    """The text without terminal colour codes (the CLI may colour its output)."""
    return ANSI_ESCAPE.sub("", text)


def mask_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every given secret value and every ``API Key: ...`` value replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return API_KEY_LINE.sub(lambda match: match.group(1) + MASK, text)


def mask_json(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """A copy of decoded JSON with values under secret-looking keys (and known secrets) masked."""
    secrets = [secret for secret in secrets if secret]
    if isinstance(value, dict):
        return {
            key: (MASK if SECRET_KEY_NAME.search(str(key)) and item else mask_json(item, secrets))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_json(item, secrets) for item in value]
    if isinstance(value, str):
        return mask_text(value, secrets)
    return value


def find_api_key(output: str) -> str | None:
    """The API key in `serve` output: after ``API Key`` and a colon, else the only lone UUID."""
    output = strip_ansi(output)
    for match in API_KEY_LINE.finditer(output):
        key = match.group(2).strip().strip("'\"`,;")
        if len(key) >= 8:
            return key
    uuids = {match.group(0) for match in LONE_UUID.finditer(output)}
    return uuids.pop() if len(uuids) == 1 else None
