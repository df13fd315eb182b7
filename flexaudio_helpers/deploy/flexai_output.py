"""Reading what the ``flexai`` CLI prints: login words, tables, ``--help`` listings and JSON.

What the CLI prints is only partly documented (see the project's flexai-platform notes), so every
parser here is tolerant: colours, box-drawing bars, notices before JSON and truncated cells.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..redact import TABLE_BARS, strip_ansi

# `auth status` output format is undocumented, and it may exit 0 when logged out: these words
# mean "not logged in" ("token refreshed" or "expires in 3h" do not).
LOGGED_OUT_WORDS = re.compile(
    r"(?i)not (logged|signed) in|logged out|unauthenticated|not authenticated|authentication required"
    r"|login required|please (log|sign) ?in|no (valid )?(access )?token|expired"
)
# A failing command whose output says this failed for want of a login.
AUTH_FAILURE_WORDS = re.compile(
    r"(?i)not (logged|signed) in|logged out|unauthenticated|login required|unauthori[sz]ed|\b401\b"
    r"|please (log|sign) ?in|flexai auth login|token (has )?expired"
)
# A command that failed because the thing it names is not there.
NOT_FOUND_WORDS = re.compile(r"(?i)not found|no such|does not exist|doesn't exist|\b404\b")
ALREADY_EXISTS_WORDS = re.compile(r"(?i)already exists|already in use|\b409\b")
# Flags that skip a confirmation prompt, in order of preference (passed only when --help lists one).
NON_INTERACTIVE_FLAGS = ("--yes", "--force", "-y", "-f")


def table_lookup(text: str, name: str) -> str:
    """Whether a text table lists `name`: ``"yes"``, ``"maybe"`` (a cell cut short with …) or ``"no"``.

    Cells are split on whitespace and on the bars ``│ ┃ ║ ┆ |``; a whole cell must match (unlike
    ``grep -q NAME``, no prefix matches), except that a truncated cell matching the start of `name`
    is a maybe.
    """
    answer = "no"
    for line in strip_ansi(text).splitlines():
        for cell in re.split(rf"[\s{TABLE_BARS},]+", line):
            if cell == name:
                return "yes"
            stem = cell.removesuffix("…").removesuffix("...")
            if stem != cell and len(stem) >= 2 and name.startswith(stem):
                answer = "maybe"
    return answer


def non_interactive_flag(help_text: str) -> str | None:
    """The flag that skips a confirmation (``--yes``, ``--force``, ``-y``, ``-f``) if `help_text` lists one.

    A short flag counts only on a line whose long form (if any) is yes/force: ``-f, --file`` is not.
    """
    offered = set()
    for line in strip_ansi(help_text).splitlines():
        longs = re.findall(r"(?<![\w-])--([a-z][\w-]*)", line)
        offered.update(f"--{flag}" for flag in longs if flag in ("yes", "force"))
        if set(longs) <= {"yes", "force"}:
            offered.update(f"-{flag}" for flag in re.findall(r"(?<![\w-])-([yf])\b", line))
    return next((flag for flag in NON_INTERACTIVE_FLAGS if flag in offered), None)


def subcommands(help_text: str) -> set[str]:
    """The subcommand names listed by ``--help`` (the "Available Commands:" block of Go CLIs)."""
    lines = strip_ansi(help_text).splitlines()
    starts = [index for index, line in enumerate(lines) if re.match(r"(?i)\s*(available )?commands:", line)]
    if starts:
        block = []
        for line in lines[starts[0] + 1 :]:
            if not line.strip() or not line[:1].isspace():
                break
            block.append(line)
    else:  # no recognised header: every indented line may start with a subcommand name
        block = [line for line in lines if line[:1].isspace()]
    names = {line.split()[0].rstrip(",:") for line in block if line.split()}
    return {name for name in names if re.match(r"^[a-z][\w-]*$", name)}


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` or None when any level is missing or not an object."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def parse_json_output(text: str) -> Any:
    """The JSON document in a command's output, skipping any notice printed before it."""
    text = strip_ansi(text)
    start = min((index for index in (text.find("{"), text.find("[")) if index >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON in the output")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def endpoint_status(data: Any) -> str:
    """The lower-case ``runtime.status`` of ``inspect -j`` output, or ``"unknown"``."""
    status = dig(data, "runtime", "status")
    return str(status).strip().lower() if status else "unknown"


def endpoint_url(data: Any) -> str | None:
    """The base URL (no ``/v1``, no trailing slash) from ``config.endpointUrl``, once there is one."""
    url = dig(data, "config", "endpointUrl")
    return url.strip().rstrip("/").removesuffix("/v1") if isinstance(url, str) and url.strip() else None
