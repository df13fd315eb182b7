"""Keeping secrets out of what is shown: errors, URLs, command lines, CLI output and JSON.

The client, the ``flexaudio`` command and deploy all mask through these functions, with one
`MASK`. FlexAI prints an endpoint's API key once, on a line like ``API Key: <key>``; that output
is searched for the key (`find_api_key`) and masked before anything of it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Separators of box-drawn and plain text tables.
TABLE_BARS = "│┃║┆|"
# "API Key: 1b2c...", "api-key = ...", "Access Key: ...", "│ API Key │ ... │": what follows the label.
API_KEY_LINE = re.compile(r"(?i)((?:api|access)[\s_-]?key\b[^:=\n│┃║┆|]*[:=│┃║┆|][ \t]*)([^\s│┃║┆|]+)")
# The same with the bare label "Key" (used only to find a key, never to mask).
ANY_KEY_LABEL = re.compile(r"(?i)(?:\b(?:api|access)[\s_-]?|\b)key\b[^:=\n│┃║┆|]*[:=│┃║┆|][ \t]*(.*)")
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# A UUID standing alone, not inside a host name like inference-<uuid>-1a2b3c4d.platform.flex.ai.
LONE_UUID = re.compile(rf"(?<![\w-]){UUID}(?![\w-])")
ANY_UUID = re.compile(UUID)
# An opaque token: 16 or more characters of [A-Za-z0-9_-].
OPAQUE_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}")
# Hyphenated words ("shown-in-the-console") are long but not keys.
WORDS_ONLY = re.compile(r"[A-Z]?[a-z]+(?:[-_][A-Z]?[a-z]+)*")
# A table header cell that names the key column.
KEY_HEADER = re.compile(r"(?i)(?:api|access)?[\s_-]?key")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# JSON keys whose values are secrets wherever they appear in inspect output.
SECRET_KEY_NAME = re.compile(r"(?i)(api[_-]?key|token|secret|password|authorization|credential)")


def strip_ansi(text: str) -> str:
    """The text without terminal colour codes (the CLI may colour its output)."""
    return ANSI_ESCAPE.sub("", text)


def mask_values(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with each given secret, whatever its length, replaced by ***.

    Longest first, so a secret inside another is never left half shown.
    """
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def mask_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every given secret value and every ``API Key: ...`` value replaced by ***."""
    return API_KEY_LINE.sub(lambda match: match.group(1) + MASK, mask_values(text, secrets))


def display_url(url: str) -> str:
    """The URL with any user:password and query values masked, for messages and reprs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", ""))


def mask_tokens(text: str) -> str:
    """`text` with every UUID-like value and every key-shaped token replaced by ***.

    For output that may hold a key we could not recognise: nothing key-like is shown.
    """
    text = ANY_UUID.sub(MASK, text)
    return OPAQUE_TOKEN.sub(lambda match: match.group(0) if not is_key_shaped(match.group(0)) else MASK, text)


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


def is_key_shaped(value: str) -> bool:
    """True for a UUID or an opaque token (16+ of ``[A-Za-z0-9_-]``), never for plain words."""
    if re.fullmatch(UUID, value):
        return True
    return bool(OPAQUE_TOKEN.fullmatch(value)) and not WORDS_ONLY.fullmatch(value)


def key_in_column(lines: list[str]) -> str | None:
    """The key under a table header cell named ``API Key``/``Key`` (a key column), or None."""
    for index, line in enumerate(lines):
        cells = [cell.strip() for cell in re.split(f"[{TABLE_BARS}]", line)]
        column = next((at for at, cell in enumerate(cells) if KEY_HEADER.fullmatch(cell)), None)
        if column is None or len(cells) < 2:
            continue
        for row in lines[index + 1 :]:
            if not re.search(r"\w", row):  # a border line between header and rows
                continue
            row_cells = [cell.strip() for cell in re.split(f"[{TABLE_BARS}]", row)]
            value = row_cells[column] if column < len(row_cells) else ""
            return value if is_key_shaped(value) else None
    return None


def find_api_key(output: str, *, lone_uuid: bool = True) -> str | None:
    """The API key in `serve` output, or None.

    Looks in a key column of a table, else after a label (``API Key``, ``Access Key``, ``api_key``,
    ``Key``) and a ``:``, ``=`` or table bar, on the same line or alone on the next one. Only a
    key-shaped value counts: a UUID or an opaque token of 16+ characters, never an English word.
    With `lone_uuid` (for the output of a successful ``serve``), an unlabelled UUID is taken
    when it is the only one.
    """
    lines = [line.strip().strip(TABLE_BARS).strip() for line in strip_ansi(output).splitlines()]
    in_column = key_in_column(lines)
    if in_column:
        return in_column
    for index, line in enumerate(lines):
        for match in ANY_KEY_LABEL.finditer(line):
            after = match.group(1).strip(f" \t{TABLE_BARS}")
            if not after and index + 1 < len(lines):  # "Your API key:" then the key on its own line
                after = lines[index + 1]
            candidate = re.split(rf"[\s{TABLE_BARS}]+", after)[0].strip("'\"`,;.") if after else ""
            if is_key_shaped(candidate):
                return candidate
    if not lone_uuid:
        return None
    uuids = {match.group(0) for match in LONE_UUID.finditer(strip_ansi(output))}
    return uuids.pop() if len(uuids) == 1 else None
