"""`AudioClient`: generate clips from any FlexServe-compatible text-to-audio endpoint.

It posts the shared parameter model (`params.GenerationRequest`) to ``{url}/v1/audios/generations``
with a bearer key and returns a `Clip`. Timeouts are explicit (short connect, long read), a busy
or unreachable endpoint is retried a bounded number of times, every failure is a typed error from
`errors` carrying the server's message and field, and the API key never appears in a repr, a log
line, an exception or a URL.

    from flexaudio_helpers.client import AudioClient

    with AudioClient() as client:  # INFERENCE_URL / INFERENCE_API_KEY, or a .env file
        clip = client.generate("Rain on a tin roof", audio_end_in_s=5.0, seed=1)
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import shlex
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from dotenv import dotenv_values, find_dotenv

from . import __version__
from .audio import Clip
from .errors import (
    AuthenticationError,
    EndpointNotConfigured,
    EndpointNotFound,
    EndpointUnavailable,
    FlexAudioError,
    GenerationFailed,
    GenerationTimeout,
    InvalidParameters,
    InvalidResponse,
    ResponseTooLarge,
)
from .params import ALLOWED, CHANNELS, MAX_AUDIO_SECONDS, MAX_SEED, GenerationRequest
from .protocol import (
    GENERATION_SECONDS_HEADER,
    GENERATIONS_ROUTE,
    MODELS_ROUTE,
    OFFLINE_HEADER,
    QUEUE_SECONDS_HEADER,
    SEED_HEADER,
)

log = logging.getLogger(__name__)

URL_ENV = "INFERENCE_URL"
API_KEY_ENV = "INFERENCE_API_KEY"
MASK = "***"
# Busy (429, 503) or a proxy in front of a restarting endpoint (502, 504): worth another try.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Connection failures worth another try. A read timeout is not among them: the endpoint may
# still be generating, and sending the request again would only queue a second generation.
RETRY_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.RemoteProtocolError,
    httpx.WriteError,
    httpx.WriteTimeout,
)
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 120.0  # a Retry-After longer than this is cut to it
INSPECT_HINT = "flexai inference inspect NAME -j | jq .config.endpointUrl -r"
MANIFEST_NAME = "manifest.jsonl"
# The largest real answer is 47.55 s of 16-bit stereo WAV, about 17 MB; 64 MiB leaves room for
# float WAV or other formats, and stops an endless or decompressing body long before it hurts.
MAX_RESPONSE_BYTES = 64 * 2**20
# Decoded samples (all channels) allowed in an answer: twice the model's longest clip at 48 kHz.
MAX_DECODED_SAMPLES = int(2 * CHANNELS * 48_000 * MAX_AUDIO_SECONDS)
MAX_ERROR_BYTES = 64 * 1024  # an error page is read only this far
MAX_ERROR_TEXT = 300  # characters of it shown in a message
EXTRA_SECONDS = 120.0  # the overall deadline per request: read_timeout plus this, unless given
# What a bearer key may hold: visible ASCII (anything else cannot be sent in an HTTP header).
KEY_CHARACTERS = frozenset(chr(code) for code in range(0x21, 0x7F))


# ----- requests and URLs ---------------------------------------------------------------------
def as_request(item: Any, /, **parameters: Any) -> GenerationRequest:
    """A validated request from a prompt, a body dict or a `GenerationRequest` (plus parameters)."""
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


def display_url(url: str) -> str:
    """The URL with any user:password and query values masked, for messages and reprs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", ""))


def normalise_url(url: str) -> tuple[str, list[str]]:
    """The endpoint's base URL, and the route suffixes removed from it.

    FlexAI's ``.config.endpointUrl`` is a base URL with no ``/v1``; people often paste the full
    ``.../v1/audios/generations`` (sometimes twice) or ``.../v1``. The client adds the route
    itself, so those suffixes are removed rather than doubled.
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
        suffix = next((s for s in (GENERATIONS_ROUTE, "/v1") if path.endswith(s)), None)
        if suffix is None:
            break
        path = path[: -len(suffix)].rstrip("/")
        removed.append(suffix)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, "")), removed


def _join(base: str, route: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path + route, parts.query, ""))


def _setting(name: str, dotenv: dict[str, str | None]) -> str | None:
    """An environment variable, else the same name in the .env file; blank counts as unset."""
    value = (os.environ.get(name) or "").strip() or (dotenv.get(name) or "").strip()
    return value or None


def _read_dotenv(env_file: str | os.PathLike | None) -> dict[str, str | None]:
    path = env_file if env_file is not None else find_dotenv(usecwd=True)
    return dotenv_values(path) if path and Path(path).is_file() else {}


# ----- reading answers -----------------------------------------------------------------------
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
    return _shorten(text) or response.reason_phrase, None


def _shorten(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    return _shorten(" ".join(page[start + 1 : end].split()))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
        if not math.isfinite(seconds):  # "nan" or "inf": not a delay anyone meant
            return None
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _header_number(response: httpx.Response, name: str, kind: type = float) -> Any:
    try:
        value = kind(response.headers[name])
    except (KeyError, ValueError):
        return None
    return value if kind is not float or math.isfinite(value) else None


def _seed_header(response: httpx.Response) -> int | None:
    """The seed the endpoint used, from ``X-Seed``; `InvalidResponse` when it is not a seed."""
    value = response.headers.get(SEED_HEADER)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_SEED:
        raise InvalidResponse(
            f"the endpoint's {SEED_HEADER} header is {_shorten(value, 40)!r}, not a seed "
            f"(an integer from 0 to {MAX_SEED})"
        )
    return int(value)


def check_key(api_key: str) -> None:
    """Raise `AuthenticationError` (without the key) unless it can be sent in a header."""
    bad = [index for index, character in enumerate(api_key) if character not in KEY_CHARACTERS]
    if bad:
        raise AuthenticationError(
            f"the API key cannot be sent in an HTTP header: character {bad[0] + 1} of {len(api_key)} "
            "is not visible ASCII (a space, a control character or a non-ASCII letter); check how "
            f"it was copied into {API_KEY_ENV} or api_key=..."
        )


def _value_at(body: dict, field: str | None) -> Any:
    value: Any = body
    for part in (field or "").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


# ----- batches -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchResult:
    """One item of `generate_many`: its clip, or the error that stopped it.

    `path` is where the clip was saved (with ``out_dir``); `reused` is True when a valid file
    from an earlier run was loaded instead of generating again.
    """

    index: int
    request: GenerationRequest | None
    clip: Clip | None = None
    error: Exception | None = None
    path: Path | None = None
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.clip is not None


def clip_file_name(index: int, request: GenerationRequest) -> str:
    """A stable file name for item `index` of a batch, e.g. ``0003-rain-on-a-tin-roof.wav``."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.inputs.lower()).strip("-")[:40].rstrip("-")
    return f"{index:04d}-{slug or 'clip'}.wav"


def _reusable(path: Path, request: GenerationRequest) -> Clip | None:
    """The clip saved at `path` by an earlier run of the same request, or None."""
    if not path.is_file():
        return None
    try:
        clip = Clip.load(path)
    except Exception:  # unreadable or foreign file: generate it again
        return None
    if clip.request is None or clip.request.to_body() != request.to_body():
        return None
    return clip


def _raw_body(item: Any) -> Any:
    if isinstance(item, GenerationRequest):
        return item.to_body()
    if isinstance(item, str):
        return {"inputs": item}
    try:
        json.dumps(item)
    except (TypeError, ValueError):
        return repr(item)
    return item


def _manifest_line(result: BatchResult | None, index: int, item: Any, out_dir: Path) -> dict[str, Any]:
    if result is None:
        return {"index": index, "status": "pending", "request": _raw_body(item)}
    status = "reused" if result.reused else "ok" if result.ok else "failed"
    line: dict[str, Any] = {
        "index": index,
        "status": status,
        "request": result.request.to_body() if result.request else _raw_body(item),
        "seed": result.clip.seed if result.clip else None,
        "path": str(result.path.relative_to(out_dir)) if result.ok and result.path else None,
        "error": f"{type(result.error).__name__}: {result.error}" if result.error else None,
    }
    if result.clip and result.clip.timings:
        line["timings"] = result.clip.timings
    return line


INFLATE_CHUNK_BYTES = 2**20


def _body_chunks(response: httpx.Response) -> Iterator[bytes]:
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


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file through a temporary file and a rename: never half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ----- the client ----------------------------------------------------------------------------
class AudioClient:
    """Generate audio clips from a FlexServe-compatible endpoint.

    `url` is the endpoint's base URL (``/v1/audios/generations`` is added; a pasted route or
    ``/v1`` is removed) and `api_key` its bearer key; either defaults to ``INFERENCE_URL`` /
    ``INFERENCE_API_KEY`` from the environment, then from a ``.env`` file (`env_file`, else the
    nearest one above the working directory). `read_timeout` must cover a whole generation on
    a cold endpoint (200 steps of 47 s audio). Failed connections and 429/502/503/504 answers
    are retried `max_retries` times, waiting ``backoff * 2**n`` seconds (with jitter) or what
    Retry-After asks.

    What a server can make the client do is bounded: an answer over `max_response_bytes` (or
    audio that decodes to over `max_decoded_samples`) is refused with `ResponseTooLarge`, error
    pages are read only in part, and each attempt ends by `total_timeout` seconds (default
    `read_timeout` + 120) however slowly the bytes trickle in.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 900.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        env_file: str | os.PathLike | None = None,
        total_timeout: float | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_decoded_samples: int = MAX_DECODED_SAMPLES,
    ) -> None:
        if max_retries < 0 or backoff < 0 or connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts must be positive and max_retries/backoff at least 0")
        if (total_timeout is not None and total_timeout <= 0) or max_response_bytes < 1:
            raise ValueError("total_timeout and max_response_bytes must be positive")
        dotenv = _read_dotenv(env_file) if url is None or api_key is None else {}
        url = url if url is not None else _setting(URL_ENV, dotenv)
        if not url:
            raise EndpointNotConfigured(
                f"no endpoint URL: pass url=..., or set {URL_ENV} (in the environment or a .env file) "
                f"to the endpoint's base URL, e.g. from `{INSPECT_HINT}`"
            )
        self._api_key = (api_key if api_key is not None else _setting(API_KEY_ENV, dotenv)) or None
        if self._api_key:
            check_key(self._api_key)
        self.url, self.removed_suffixes = normalise_url(url)
        if self.removed_suffixes:
            log.info(
                "using the base URL %s (removed %s: the client adds %s itself)",
                display_url(self.url),
                "".join(reversed(self.removed_suffixes)),
                GENERATIONS_ROUTE,
            )
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.total_timeout = total_timeout if total_timeout is not None else read_timeout + EXTRA_SECONDS
        self.max_response_bytes = max_response_bytes
        self.max_decoded_samples = max_decoded_samples
        # No pool timeout: generate_many bounds the concurrency itself.
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=60.0, pool=None)
        # identity: no compressed answers, so none can decompress into more than was sent.
        headers = {"User-Agent": f"flexaudio/{__version__}", "Accept-Encoding": "identity"}
        self._http = httpx.Client(timeout=timeout, headers=headers, follow_redirects=False)

    # ----- plumbing --------------------------------------------------------------------------
    def __repr__(self) -> str:
        key = "<hidden>" if self._api_key else None
        return f"AudioClient(url={display_url(self.url)!r}, api_key={key}, read_timeout={self.read_timeout})"

    __str__ = __repr__

    def __enter__(self) -> AudioClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def generations_url(self) -> str:
        """Where generation requests go."""
        return _join(self.url, GENERATIONS_ROUTE)

    def _scrub(self, text: str) -> str:
        # Should a server echo the key back, it is masked. (Keys shorter than 8 characters are
        # not real keys, and masking them would garble ordinary words.)
        key = self._api_key
        return text.replace(key, MASK) if key and len(key) >= 8 else text

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, so that parallel clients do not retry in step."""
        return min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF) * random.uniform(0.5, 1.0)

    def _send(self, method: str, route: str, body: dict | None = None) -> httpx.Response:
        """One call with the retry policy; returns the first answer that is not worth retrying."""
        url = _join(self.url, route)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._request(method, url, body, headers)
            except httpx.ReadTimeout:
                raise GenerationTimeout(
                    f"no answer from {display_url(url)} within the read timeout of {self.read_timeout:g} s "
                    "(not retried: the endpoint may still be working; a cold endpoint or many steps "
                    "can need longer: AudioClient(read_timeout=...))"
                ) from None
            except RETRY_ERRORS as exc:
                failure = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
                delay = self._delay(attempt)
            except httpx.TransportError as exc:  # e.g. a proxy refusing: retrying will not help
                raise EndpointUnavailable(
                    self._scrub(f"{method} {display_url(url)} failed: {type(exc).__name__}: {exc}")
                ) from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                message, _ = server_error(response)
                failure = self._scrub(f"HTTP {response.status_code}: {message}")
                waited = retry_after(response)
                delay = waited if waited is not None else self._delay(attempt)
            if attempt == attempts:
                raise EndpointUnavailable(
                    f"{method} {display_url(url)} failed after {attempts} attempt"
                    f"{'s' if attempts > 1 else ''}; last: {failure}"
                    + (" (is the endpoint running, and is the URL right?)" if "HTTP" not in failure else "")
                )
            log.info("%s; retrying in %.2f s (attempt %d of %d)", failure, delay, attempt + 1, attempts)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _request(self, method: str, url: str, body: dict | None, headers: dict) -> httpx.Response:
        """One attempt, its body streamed and checked against the size limit and the deadline.

        The answer comes back fully read (error bodies only up to `MAX_ERROR_BYTES`).
        """
        deadline = time.monotonic() + self.total_timeout
        request = self._http.build_request(method, url, json=body, headers=headers)
        response = self._http.send(request, stream=True)
        try:
            error = not response.is_success
            limit = MAX_ERROR_BYTES if error else self.max_response_bytes
            declared = response.headers.get("content-length", "")
            if not error and declared.isdigit() and int(declared) > limit:
                raise self._too_large(url, f"announces {int(declared)} bytes")
            content = bytearray()
            for chunk in _body_chunks(response):
                content += chunk
                if len(content) > limit:
                    if error:  # enough of an error page to say what it is
                        del content[limit:]
                        break
                    raise self._too_large(url, f"sent over {limit} bytes")
                if time.monotonic() > deadline:
                    raise GenerationTimeout(
                        f"{display_url(url)} was still sending its answer after {self.total_timeout:g} s "
                        f"({len(content)} bytes so far; AudioClient(total_timeout=...) allows longer)"
                    )
        finally:
            response.close()
        # A fresh response over the bytes read: already decoded, so without Content-Encoding.
        skip = {b"content-encoding", b"content-length", b"transfer-encoding"}
        kept = [(name, value) for name, value in response.headers.raw if name.lower() not in skip]
        return httpx.Response(response.status_code, headers=kept, content=bytes(content), request=request)

    def _too_large(self, url: str, what: str) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"the answer from {display_url(url)} {what}, over the limit of {self.max_response_bytes} "
            "(the longest clip is about 17 MB; AudioClient(max_response_bytes=...) allows more)"
        )

    def _raise_for_status(self, response: httpx.Response, body: dict | None = None) -> None:
        """Turn an error answer into the matching typed error."""
        status = response.status_code
        if response.is_success:
            return
        message, param = server_error(response)
        message = self._scrub(message)
        where = f"{response.request.method} {display_url(str(response.request.url))}"
        error: FlexAudioError
        if status in (400, 413, 422):
            name = (param or "").rsplit(".", 1)[-1]
            error = InvalidParameters(
                f"the endpoint rejected the request (HTTP {status}): {message}",
                field=param,
                value=_value_at(body or {}, param),
                allowed=ALLOWED.get(name),
            )
        elif status in (401, 403):
            if self._api_key:
                advice = f"check the key ({API_KEY_ENV}, or the api_key given) belongs to this endpoint"
            else:
                advice = f"no API key was sent: pass api_key=... or set {API_KEY_ENV} (environment or .env)"
            refused = f"the endpoint refused the request (HTTP {status}): {message}"
            error = AuthenticationError(f"{refused}; {advice}")
        elif status in (404, 405):
            error = EndpointNotFound(self._not_found_message(where, status, message))
        elif 300 <= status < 400:
            target = display_url(response.headers.get("location", "?"))
            error = GenerationFailed(
                f"{where} redirects (HTTP {status}) to {target}: use that address as the endpoint URL"
            )
        else:
            error = GenerationFailed(f"{where} failed (HTTP {status}): {message}")
        error.status_code = status
        raise error

    def _not_found_message(self, where: str, status: int, message: str) -> str:
        text = f"nothing answers {where} (HTTP {status}: {message})"
        path = urlsplit(self.url).path
        if self.removed_suffixes:
            removed = "".join(reversed(self.removed_suffixes))
            text += f"; the client already removed {removed} from the URL given"
        if re.search(r"/v\d+(/|$)|generations|audio", path):
            text += (
                f"; the URL's path {path!r} looks like part of a route: give the endpoint's base URL, "
                f"the client adds {GENERATIONS_ROUTE} itself"
            )
        elif path:
            text += f"; the base URL has a path ({path!r}): FlexAI endpoint URLs have none"
        return text + f". The base URL comes from `{INSPECT_HINT}` (no /v1 at the end)"

    # ----- the API ---------------------------------------------------------------------------
    def generate(self, prompt_or_request: Any, /, **parameters: Any) -> Clip:
        """Generate one clip from a prompt (with keyword parameters), a body dict or a request.

        The request is validated before anything is sent (`InvalidParameters` names the field).
        The clip holds the request, the seed the endpoint used (``X-Seed``) and its timings:
        ``request`` (wall clock, retries included), ``generation`` and ``queue`` (from the endpoint).
        """
        request = as_request(prompt_or_request, **parameters)
        body = request.to_body()
        started = time.perf_counter()
        response = self._send("POST", GENERATIONS_ROUTE, body)
        wall = time.perf_counter() - started
        self._raise_for_status(response, body)
        timings = {"request": wall}
        for key, header in (("generation", GENERATION_SECONDS_HEADER), ("queue", QUEUE_SECONDS_HEADER)):
            value = _header_number(response, header)
            if value is not None:
                timings[key] = value
        return Clip.from_bytes(
            response.content,
            request=request,
            seed=_seed_header(response),
            max_samples=self.max_decoded_samples,
            timings=timings,
            offline=response.headers.get(OFFLINE_HEADER, "").lower() == "true",
        )

    def generate_many(
        self,
        requests: Iterable[Any],
        *,
        concurrency: int = 2,
        progress: bool = True,
        out_dir: str | os.PathLike | None = None,
    ) -> list[BatchResult]:
        """Generate several clips, `concurrency` at a time, with a progress bar.

        `requests` are prompts, body dicts or `GenerationRequest`s. Results come back in input
        order; a failed item holds its error and the others are kept. With `out_dir`, each clip
        is saved as it arrives (atomically, as ``NNNN-prompt.wav``) and ``manifest.jsonl`` lists
        every item (request, seed, path or error). Items whose file already holds the same
        request are loaded instead of generated, so running a batch again completes only the
        missing ones.
        """
        from tqdm.auto import tqdm  # imported here: only batches draw a progress bar

        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        items = list(requests)
        folder = Path(out_dir) if out_dir is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        results: list[BatchResult | None] = [None] * len(items)
        todo: list[tuple[int, GenerationRequest, Path | None]] = []
        for index, item in enumerate(items):
            try:
                request = as_request(item)
            except InvalidParameters as exc:
                results[index] = BatchResult(index, None, error=exc)
                continue
            path = folder / clip_file_name(index, request) if folder is not None else None
            saved = _reusable(path, request) if path is not None else None
            if saved is not None:
                results[index] = BatchResult(index, request, saved, path=path, reused=True)
            else:
                todo.append((index, request, path))

        def write_manifest() -> None:
            if folder is not None:
                lines = [_manifest_line(results[i], i, item, folder) for i, item in enumerate(items)]
                write_text_atomic(folder / MANIFEST_NAME, "".join(json.dumps(line) + "\n" for line in lines))

        write_manifest()
        failed = sum(1 for result in results if result is not None and not result.ok)
        done = len(items) - len(todo)
        bar = tqdm(total=len(items), initial=done, disable=not progress, desc="generating", unit="clip")
        if failed:
            bar.set_postfix(failed=failed)
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="flexaudio")
        try:
            futures = [pool.submit(self._batch_item, *job) for job in todo]
            for future in as_completed(futures):
                result = future.result()
                results[result.index] = result
                failed += not result.ok
                write_manifest()
                bar.update()
                if failed:
                    bar.set_postfix(failed=failed)
        finally:
            # On Ctrl-C, drop what has not started instead of waiting for the whole batch.
            pool.shutdown(wait=False, cancel_futures=True)
            bar.close()
        return [result for result in results if result is not None]

    def _batch_item(self, index: int, request: GenerationRequest, path: Path | None) -> BatchResult:
        try:
            clip = self.generate(request)
            if path is not None:
                clip.save(path)
        except Exception as exc:  # one item's failure, whatever it is, must not lose the others
            return BatchResult(index, request, error=exc)
        return BatchResult(index, request, clip, path=path)

    def models(self) -> dict:
        """What ``GET /v1/models`` says about the served model."""
        response = self._send("GET", MODELS_ROUTE)
        self._raise_for_status(response)
        try:
            return response.json()
        except ValueError:
            raise GenerationFailed(
                f"GET {display_url(str(response.url))} did not answer JSON: {server_error(response)[0]}"
            ) from None

    def curl_command(self, prompt_or_request: Any, /, *, output: str = "clip.wav", **parameters: Any) -> str:
        """The same request as a ``curl`` command, in the tutorial's layout.

        The key appears as ``$INFERENCE_API_KEY``, never its value.
        """
        body = json.dumps(as_request(prompt_or_request, **parameters).to_body(), indent=2, ensure_ascii=False)
        return " \\\n  ".join(
            [
                "curl -X POST",
                f'-H "Authorization: Bearer ${API_KEY_ENV}"',
                "-H 'Content-Type: application/json'",
                f"-d {shlex.quote(body)}",
                f"-o {shlex.quote(output)}",
                shlex.quote(self.generations_url),
            ]
        )
