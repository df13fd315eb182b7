"""Endpoints remembered between kernels: one private JSON file per target and name.

``<state folder>/endpoints/<target>/<name>.json`` (mode 0600) holds the url, the API key, the
model and, for local endpoints, the process id and port. ``INFERENCE_URL`` and
``INFERENCE_API_KEY`` (environment, then ``.env``, as the client reads them) override every
saved endpoint.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path
from typing import Any

from ..errors import EndpointNotFound, InvalidParameters
from ..files import read_private
from ..protocol import INFERENCE_API_KEY_ENV, INFERENCE_URL_ENV
from ..settings import endpoint_settings
from ..state import state_dir, write_private
from ..urls import normalise_url
from .endpoint_info import Endpoint

FLEXAI, LOCAL = "flexai", "local"
TARGETS = (FLEXAI, LOCAL)  # the targets that save endpoints, a folder each
DEFAULT_NAME = "stable-audio-open"  # the notebooks' endpoint
# Names become file names here and arguments to the CLI: keep them plain.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
NAME_RULE = "1 to 128 letters, digits, '-', '_' or '.', starting with a letter or digit"


def check_name(name: str, field: str = "name") -> str:
    """`name` if it is a plain endpoint or secret name, else `InvalidParameters`."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidParameters(
            f"{field} {name!r} is not allowed: use {NAME_RULE}", field=field, value=name, allowed=NAME_RULE
        )
    return name


def record_path(target: str, name: str) -> Path:
    """Where the endpoint `name` of `target` is remembered."""
    return state_dir() / "endpoints" / target / f"{check_name(name)}.json"


def save_record(target: str, name: str, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the saved record (creating it), write it 0600, and return it."""
    record = load_record(target, name) or {"name": name, "target": target}
    record.update(fields, saved_at=time.time())
    write_private(record_path(target, name), json.dumps(record, indent=2))
    return record


def load_record(target: str, name: str) -> dict[str, Any] | None:
    """The saved record, or None. A damaged file counts as missing."""
    text = read_private(record_path(target, name))
    try:
        record = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def remove_record(target: str, name: str) -> bool:
    """Forget the endpoint; True when there was something to forget."""
    path = record_path(target, name)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def saved_names(target: str | None = None) -> list[str]:
    """Names of the saved endpoints (of one target, or all), sorted."""
    root = state_dir() / "endpoints"
    folders = [root / target] if target else [root / known for known in TARGETS]
    return sorted({path.stem for folder in folders if folder.is_dir() for path in folder.glob("*.json")})


def endpoint_from_record(record: dict[str, Any]) -> Endpoint:
    return Endpoint(
        name=record.get("name", ""),
        url=record.get("url"),
        api_key=record.get("api_key"),
        target=record.get("target", ""),
        model=record.get("model"),
    )


def endpoint_from_env(name: str = "") -> Endpoint | None:
    """The endpoint named by ``INFERENCE_URL``/``INFERENCE_API_KEY`` (both from the environment, or
    both from ``.env``: `settings.endpoint_settings`), when the URL is set."""
    url, api_key, _ = endpoint_settings()
    return Endpoint(name=name or "env", url=url, api_key=api_key, target="env") if url else None


def find_endpoint(name: str, target: str | None = None) -> Endpoint:
    """The endpoint to use for `name`: the environment first, then the newest saved record."""
    from_env = endpoint_from_env(name)
    if from_env:
        return from_env
    records = [load_record(known, name) for known in ([target] if target else TARGETS)]
    records = [record for record in records if record]
    if not records:
        known = ", ".join(saved_names(target)) or "none"
        raise EndpointNotFound(
            f"no saved endpoint named {name!r} (saved: {known}). Serve it first "
            f"(deployment.serve({name!r}, ...)), or set {INFERENCE_URL_ENV} and {INFERENCE_API_KEY_ENV}."
        )
    return endpoint_from_record(max(records, key=lambda record: record.get("saved_at", 0)))


def remember_endpoint(name: str, api_key: str, url: str | None = None, target: str = FLEXAI) -> Endpoint:
    """Save an endpoint's API key (and url) by hand, e.g. a key copied from ``flexai`` output."""
    if target not in TARGETS:
        raise InvalidParameters(f"target {target!r} is not one of {TARGETS}", field="target", value=target)
    fields: dict[str, Any] = {"api_key": api_key.strip()}
    if url:
        fields["url"] = normalise_url(url)[0]
    return endpoint_from_record(save_record(target, name, **fields))


def write_env_file(endpoint: Endpoint) -> Path:
    """Save ``INFERENCE_URL``/``INFERENCE_API_KEY`` for shells in a private (0600) file; return its path."""
    url, api_key = shlex.quote(endpoint.require_url()), shlex.quote(endpoint.api_key or "")
    text = f"{INFERENCE_URL_ENV}={url}\n{INFERENCE_API_KEY_ENV}={api_key}\n"
    return write_private(state_dir() / "inference.env", text)
