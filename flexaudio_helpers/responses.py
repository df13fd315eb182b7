"""Reading an endpoint's answers: the body within limits, the error message, headers, and
status -> typed error.

The one map from an HTTP status to an `errors.HTTPError` subclass: `RETRY_STATUSES` are worth
another try (`retry.RetryPolicy` raises `EndpointUnavailable` once its tries run out), every other
error answer becomes what `error_for_response` returns. The client raises those, and so does
deploy's readiness check, which sends through the client. `read_bounded` reads a body so that an
endless, compressed or trickling answer can never cost more than the caller allows.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from .errors import (
    AuthenticationError,
    EndpointNotFound,
    GenerationFailed,
    GenerationTimeout,
    HTTPError,
    InvalidParameters,
    InvalidResponse,
    ResponseTooLarge,
)
from .params import ALLOWED, MAX_SEED, shorten
from .protocol import SEED_HEADER
from .redact import display_url

# Busy (429, 503) or a proxy in front of a restarting endpoint (502, 504): worth another try.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_ERROR_BYTES = 64 * 1024  # an error page is read only this far
MAX_ERROR_TEXT = 300  # characters of it shown in a message
INFLATE_CHUNK_BYTES = 2**20


def server_error(response: httpx.Response) -> tuple[str, str | None]:
    """The server's error message and field from any usual error shape.

    Ours is ``{"error": {"message", "type", "param"}}``; FastAPI answers ``{"detail": ...}``
    (a string, or a list of ``{"loc", "msg"}``); proxies answer plain text or HTML.
    """
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            param = error.get("param") or error.get("field")
            return str(error.get("message") or error.get("detail") or error), param
        if isinstance(error, str):
            return error, data.get("param")
        detail = data.get("detail")
        if isinstance(detail, str):
            return detail, None
        if isinstance(detail, list) and detail and all(isinstance(item, dict) for item in detail):
            fields = [".".join(str(p) for p in item.get("loc", ()) if p != "body") for item in detail]
            text = "; ".join(
                f"{field}: {item.get('msg', item)}" if field else str(item.get("msg", item))
                for field, item in zip(fields, detail, strict=True)
            )
            return text, fields[0] or None
        if isinstance(data.get("message"), str):
            return data["message"], data.get("param")
    text = response.content[:MAX_ERROR_BYTES].decode("utf-8", "replace").strip()
    if text.startswith("<"):
        title = _html_title(text)
        return f"an HTML page{': ' + title if title else ''}", None
    text = " ".join(text.split())
    return shorten(text, MAX_ERROR_TEXT) or response.reason_phrase, None


def _html_title(page: str) -> str:
    """The first <title> of an HTML page, found in one pass (a regex here was quadratic)."""
    lower = page.lower()
    start = lower.find("<title")
    if start < 0:
        return ""
    start = lower.find(">", start)
    end = lower.find("</title", start)
    if start < 0 or end < 0:
        return ""
    return shorten(" ".join(page[start + 1 : end].split()), MAX_ERROR_TEXT)


def _value_at(body: dict, field: str | None) -> Any:
    value: Any = body
    for part in (field or "").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def error_for_response(
    response: httpx.Response,
    *,
    body: dict | None = None,
    scrub: Callable[[str], str] = str,
    auth_advice: str = "",
    not_found_advice: str = "",
) -> HTTPError:
    """The typed error for an error answer (call it only when ``response.is_success`` is false).

    400/413/422 -> `InvalidParameters` naming the field (its value read from `body`, the request
    sent); 401/403 -> `AuthenticationError`; 404/405 -> `EndpointNotFound`; a redirect or any
    other status -> `GenerationFailed`. Each carries `status_code` and `server_message`; `scrub`
    masks secrets the server may have echoed, and the advice strings are added to the message.
    """
    status = response.status_code
    message, param = server_error(response)
    message = scrub(message)
    where = f"{response.request.method} {display_url(str(response.request.url))}"
    fields = {"status_code": status, "server_message": message}
    if status in (400, 413, 422):
        name = (param or "").rsplit(".", 1)[-1]
        return InvalidParameters(
            f"the endpoint rejected the request (HTTP {status}): {message}",
            field=param,
            value=_value_at(body or {}, param),
            allowed=ALLOWED.get(name),
            **fields,
        )
    if status in (401, 403):
        refused = f"the endpoint refused the request (HTTP {status}): {message}"
        return AuthenticationError(f"{refused}; {auth_advice}" if auth_advice else refused, **fields)
    if status in (404, 405):
        return EndpointNotFound(
            f"nothing answers {where} (HTTP {status}: {message}){not_found_advice}", **fields
        )
    if 300 <= status < 400:
        target = display_url(response.headers.get("location", "?"))
        return GenerationFailed(
            f"{where} redirects (HTTP {status}) to {target}: use that address as the endpoint URL", **fields
        )
    return GenerationFailed(f"{where} failed (HTTP {status}): {message}", **fields)


def header_number(response: httpx.Response, name: str) -> float | None:
    """The header `name` as a finite number, or None when missing or not a number."""
    try:
        value = float(response.headers[name])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def seed_header(response: httpx.Response, max_seed: int = MAX_SEED) -> int | None:
    """The seed the endpoint used, from ``X-Seed``; `InvalidResponse` when it is not a seed from 0
    to `max_seed` (what the API's requests allow)."""
    value = response.headers.get(SEED_HEADER)
    if value is None:
        return None
    # The length first: int() refuses over 4,300 digits with a ValueError of its own.
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(max_seed)) or int(value) > max_seed:
        raise InvalidResponse(
            f"the endpoint's {SEED_HEADER} header is {shorten(value, 40)!r}, not a seed "
            f"(an integer from 0 to {max_seed})"
        )
    return int(value)


def body_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The decoded body, chunk by chunk. A gzip body is inflated at most 1 MiB at a time, so a
    caller that stops at its size limit never holds more (httpx inflates a whole network read at
    once: a 64 KB read of a gzip bomb is about 64 MB)."""
    if response.headers.get("content-encoding", "").strip().lower() not in ("gzip", "x-gzip"):
        yield from response.iter_bytes()
        return
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    for data in response.iter_raw():
        while data:
            piece = inflater.decompress(data, INFLATE_CHUNK_BYTES)
            data = inflater.unconsumed_tail
            if piece:
                yield piece
    tail = inflater.flush()
    if tail:
        yield tail


def read_bounded(response: httpx.Response, *, max_bytes: int, total_timeout: float, started: float) -> bytes:
    """The whole body of a streamed `response`, within `max_bytes` and by `started + total_timeout`.

    An error answer is read only up to `MAX_ERROR_BYTES` (enough to say what it is). Raises
    `ResponseTooLarge` for a success body over `max_bytes` (announced or sent) and
    `GenerationTimeout` when the bytes are still coming at the deadline.
    """
    url = display_url(str(response.request.url))
    error = not response.is_success
    limit = MAX_ERROR_BYTES if error else max_bytes
    declared = response.headers.get("content-length", "")
    if not error and declared.isdigit() and int(declared) > limit:
        raise _too_large(url, f"announces {int(declared)} bytes", max_bytes)
    content = bytearray()
    for chunk in body_chunks(response):
        content += chunk
        if len(content) > limit:
            if error:
                del content[limit:]
                break
            raise _too_large(url, f"sent over {limit} bytes", max_bytes)
        if time.monotonic() > started + total_timeout:
            raise GenerationTimeout(
                f"{url} was still sending its answer after {total_timeout:g} s "
                f"({len(content)} bytes so far; AudioClient(total_timeout=...) allows longer)"
            )
    return bytes(content)


def _too_large(url: str, what: str, max_bytes: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"the answer from {url} {what}, over the limit of {max_bytes} "
        "(the longest clip is about 17 MB; AudioClient(max_response_bytes=...) allows more)"
    )
