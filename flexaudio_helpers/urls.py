"""The endpoint's base URL: normalising what people paste, adding routes, explaining a 404.

FlexAI's ``.config.endpointUrl`` is a base URL with no ``/v1``; people often paste the full
``.../v1/audios/generations`` (sometimes twice), vLLM-Omni's ``.../v1/audio/generate``, or
``.../v1``. The client adds the route itself, so those suffixes are removed rather than doubled.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from .errors import EndpointNotConfigured
from .protocol import GENERATIONS_ROUTE, VLLM_OMNI_AUDIO_ROUTE
from .redact import display_url

ROUTE_SUFFIXES = (GENERATIONS_ROUTE, VLLM_OMNI_AUDIO_ROUTE, "/v1")  # removed from a pasted URL
INSPECT_HINT = "flexai inference inspect NAME -j | jq .config.endpointUrl -r"


def normalise_url(url: str) -> tuple[str, list[str]]:
    """The endpoint's base URL, and the route suffixes removed from it.

    Raises `EndpointNotConfigured` unless it is an http(s) URL naming a host.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointNotConfigured(
            f"the endpoint URL must start with http:// or https:// and name a host, got "
            f"{display_url(text) if parts.scheme else text[:80]!r}"
        )
    path = parts.path.rstrip("/")
    removed: list[str] = []
    while True:
        suffix = next((s for s in ROUTE_SUFFIXES if path.endswith(s)), None)
        if suffix is None:
            break
        path = path[: -len(suffix)].rstrip("/")
        removed.append(suffix)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, "")), removed


def join_route(base: str, route: str) -> str:
    """`route` (e.g. ``/v1/models``) under the base URL, its query kept."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path + route, parts.query, ""))


def not_found_advice(base: str, removed_suffixes: list[str]) -> str:
    """What to check when nothing answers under `base` (a base URL with a route-like path...)."""
    text = ""
    path = urlsplit(base).path
    if removed_suffixes:
        text += f"; the client already removed {''.join(reversed(removed_suffixes))} from the URL given"
    if re.search(r"/v\d+(/|$)|generations|audio", path):
        text += (
            f"; the URL's path {path!r} looks like part of a route: give the endpoint's base URL, "
            f"the client adds {GENERATIONS_ROUTE} itself"
        )
    elif path:
        text += f"; the base URL has a path ({path!r}): FlexAI endpoint URLs have none"
    return text + f". The base URL comes from `{INSPECT_HINT}` (no /v1 at the end)"
