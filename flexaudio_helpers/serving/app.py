"""The local FlexServe-compatible endpoint: a FastAPI app around an `AudioGenerator`.

Same route, body, bearer auth and WAV response as FlexAI's FlexServe runtime, so every
notebook and the client work unchanged against either. Two extensions of ours, listed in
``GET /v1/models`` under ``"extensions"``: ``init_audio``, audio-to-audio, the source in the body's
``parameters.init_audio`` (base64 WAV/FLAC, `init_audio`) beside ``parameters.init_noise_level``;
and ``keep_ranges``: one whole window keeping those stretches (seconds) of ``init_audio`` and
generating the rest (`longer.generated_window`), which the client chains into longer pieces.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
from collections.abc import Awaitable
from contextlib import asynccontextmanager, nullcontext, suppress
from typing import TypeVar

import numpy as np
import soundfile as sf
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import init_audio
from ..errors import InvalidParameters, QueueFull
from ..longer import generated_window
from ..params import MAX_INIT_AUDIO_CHARS, GenerationRequest
from ..protocol import (
    EXTENSIONS,
    GENERATION_SECONDS_HEADER,
    GENERATIONS_ROUTE,
    HEALTH_ROUTE,
    MODELS_ROUTE,
    OFFLINE_HEADER,
    QUEUE_SECONDS_HEADER,
    SEED_HEADER,
    check_api_key,
    error_body,
    load_json,
)
from .guard import HIDE_QUERY_STRINGS, quiet_exception_handler
from .pipeline import AudioGenerator, GeneratedAudio
from .queue import GenerationQueue

log = logging.getLogger(__name__)
T = TypeVar("T")

# A 2,000-character prompt and negative prompt, even as \uXXXX escapes, fit well inside this.
TEXT_BODY_BYTES = 64 * 1024
# A body with an audio-to-audio source (parameters.init_audio) may be this large. It must declare
# its Content-Length (a chunked body stops at TEXT_BODY_BYTES), and only MAX_SOURCE_UPLOADS are
# read at once (about 60 MB each at most: body, text, file and samples). Sources are decoded
# MAX_SOURCE_DECODES at a time whatever the body's size: a few KB of FLAC decode to 36 MB.
MAX_BODY_BYTES = MAX_INIT_AUDIO_CHARS + TEXT_BODY_BYTES
MAX_SOURCE_UPLOADS = 2
MAX_SOURCE_DECODES = 2
BODY_TIMEOUT = 60.0  # seconds to send a whole body (14 MB at 2 Mbit/s); a trickling client is cut off


def error_response(status: int, message: str, error_type: str, param: str | None = None, **headers: str):
    """A JSON error in our ``{"error": {...}}`` shape."""
    return JSONResponse(error_body(message, error_type, param), status_code=status, headers=headers or None)


def wav_bytes(audio: GeneratedAudio) -> bytes:
    """16-bit PCM WAV, as FlexServe returns. The model's output is not clipped, so clip here."""
    buffer = io.BytesIO()
    samples = np.clip(audio.samples, -1.0, 1.0).T  # soundfile wants (frames, channels)
    sf.write(buffer, samples, audio.sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _authorized(request: Request, api_key: str) -> bool:
    # The header's exact bytes (Starlette decodes them as latin-1, which loses nothing) against
    # the key's UTF-8 bytes: no character is ever replaced, so no two keys compare equal.
    # compare_digest takes the same time whatever prefix matches: no timing oracle for the key.
    scheme, _, given = request.headers.get("authorization", "").encode("latin-1").partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), api_key.encode("utf-8"))


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to pass `limit` (checked before parsing).

    Raises TimeoutError when it takes over `BODY_TIMEOUT` seconds to arrive.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async with asyncio.timeout(BODY_TIMEOUT):
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return None
    return bytes(body)


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the body is already read, so only that can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_client_leaves(request: Request, work: Awaitable[T]) -> T | None:
    """Await `work`, or cancel it and return None if the client disconnects first.

    Uvicorn does not cancel a handler whose client left, so without this a request abandoned
    while waiting in the queue would still be generated; cancelled, the queue skips it.
    """
    job = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the server is stopping: stop waiting for the audio too
        job.cancel()
        raise
    finally:
        gone.cancel()
    if job.done():
        return job.result()
    job.cancel()
    with suppress(asyncio.CancelledError):
        await job
    return None


def create_app(
    generator: AudioGenerator, api_key: str, *, max_waiting: int = 8, docs: bool = False
) -> FastAPI:
    """Build the endpoint for a loaded model, guarded by `api_key`.

    `docs` serves ``/docs``, ``/redoc`` and ``/openapi.json`` (off by default: they describe the
    API to anyone who can connect).
    """
    check_api_key(api_key)

    def run(request: GenerationRequest, progress, *, source=None, keep=None) -> GeneratedAudio:
        if keep is None:
            return generator.generate(request, progress, source=source)
        return generated_window(generator, request, *keep, progress)

    queue = GenerationQueue(run, max_waiting=max_waiting)
    uploads = asyncio.Semaphore(MAX_SOURCE_UPLOADS)
    decodes = asyncio.Semaphore(MAX_SOURCE_DECODES)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        logging.getLogger("uvicorn.access").addFilter(HIDE_QUERY_STRINGS)
        asyncio.get_running_loop().set_exception_handler(quiet_exception_handler)
        yield

    app = FastAPI(
        title="flexaudio local endpoint",
        summary="FlexServe-compatible text-to-audio with Stable Audio Open",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.generator = generator
    app.state.queue = queue

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        message = f"{request.method} {request.url.path}: {exc.detail}"
        if exc.status_code == 404:
            message += f" (the generation route is POST {GENERATIONS_ROUTE})"
        return error_response(exc.status_code, message, kind)

    @app.get(HEALTH_ROUTE)
    async def health() -> dict:
        return {
            "status": "ok",
            "model": generator.model_name,
            "offline": generator.offline,
            "busy": queue.running,
            "waiting": queue.waiting,
        }

    @app.get(MODELS_ROUTE)
    async def models() -> dict:
        return {"object": "list", "data": [{**generator.describe(), "extensions": list(EXTENSIONS)}]}

    async def _parse_generation(request: Request, limit: int) -> tuple[GenerationRequest, dict] | Response:
        """The validated request (without its source's text) and the queue's options (its source,
        or what to keep), or the error answer."""
        try:
            raw = await _read_capped(request, limit)
        except ClientDisconnect:  # gone mid-upload: nobody to answer, nothing worth a traceback
            log.info("client disconnected while sending its request; nothing generated")
            return error_response(499, "the client disconnected", "client_closed_request")
        except TimeoutError:
            return error_response(
                408, f"the request body took over {BODY_TIMEOUT:g} s to arrive", "request_timeout", "body"
            )
        if raw is None:
            message = f"request body over {limit} bytes"
            if limit < MAX_BODY_BYTES:
                message += f" (up to {MAX_BODY_BYTES} with init_audio, sent with a Content-Length)"
            return error_response(413, message, "request_too_large", "body")
        try:
            body = load_json(raw)
        except ValueError as exc:
            return error_response(400, f"the body is {exc}", "invalid_request_error", "body")
        del raw
        try:
            generation = GenerationRequest.from_body(body)
            del body
            generator.resolve(generation)  # this model's limits, checked before the request waits
            options = {}
            if generation.parameters.init_audio is not None:
                async with decodes:
                    source = await asyncio.to_thread(_decode_source, generation)
                ranges = generation.parameters.keep_ranges
                options = {"source": source} if ranges is None else {"keep": (source[0], ranges)}
                # the queue holds samples only
                generation = generation.with_parameters(init_audio=None, keep_ranges=None)
            else:
                generation.for_source(False)  # a level alone is refused
        except InvalidParameters as exc:
            return error_response(422, str(exc), "invalid_request_error", exc.field)
        return generation, options

    def _decode_source(generation: GenerationRequest) -> tuple[np.ndarray, int]:
        source = init_audio.decode(generation.parameters.init_audio, max_seconds=generator.max_seconds)
        waveform, _ = generator.check_source(generation, source)  # resampled, the level checked
        return waveform, generator.sample_rate

    @app.post(GENERATIONS_ROUTE, response_class=Response)
    async def generate(request: Request):
        if not _authorized(request, api_key):
            return error_response(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                "authentication_error",
                **{"WWW-Authenticate": "Bearer"},
            )
        declared = request.headers.get("content-length", "")
        large = declared.isdigit() and int(declared) > TEXT_BODY_BYTES
        if large and uploads.locked():
            return error_response(
                503,
                f"{MAX_SOURCE_UPLOADS} audio sources are already arriving; retry in a second",
                "server_busy",
                **{"Retry-After": "1"},
            )
        async with uploads if large else nullcontext():
            parsed = await _parse_generation(request, MAX_BODY_BYTES if large else TEXT_BODY_BYTES)
        if isinstance(parsed, Response):
            return parsed
        generation, options = parsed
        try:
            result = await _unless_client_leaves(request, queue.submit(generation, **options))
        except QueueFull as exc:
            return error_response(503, str(exc), "server_busy", **{"Retry-After": str(exc.retry_after)})
        except Exception as exc:
            log.exception("generation failed")
            return error_response(500, f"generation failed: {type(exc).__name__}: {exc}", "server_error")
        if result is None:  # nobody is listening any more; uvicorn drops this answer
            log.info("client disconnected before its audio was ready; request dropped")
            return error_response(499, "the client disconnected", "client_closed_request")
        audio = result.audio
        headers = {
            SEED_HEADER: str(audio.seed),
            GENERATION_SECONDS_HEADER: f"{audio.seconds:.3f}",
            QUEUE_SECONDS_HEADER: f"{result.queue_seconds:.3f}",
            OFFLINE_HEADER: "true" if generator.offline else "false",
        }
        return Response(wav_bytes(audio), media_type="audio/wav", headers=headers)

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_generation_route(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi
    return app


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"], "description": "the field at fault, if one is"},
            },
        }
    },
}


def document_generation_route(document: dict) -> dict:
    """Describe the generation route's body, auth and answers in the OpenAPI document.

    The route reads its body itself (size cap first, then our own errors), so FastAPI cannot see
    it. The schema is added after FastAPI builds the document, because FastAPI's models would
    turn pydantic's exact integer bounds (seed up to 2**64 - 1) into floats.
    """
    request_schema = GenerationRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(
        {**request_schema.pop("$defs", {}), "GenerationRequest": request_schema, "Error": _ERROR_SCHEMA}
    )
    components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}

    def error(description: str, **headers: str) -> dict:
        answer = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if headers:
            answer["headers"] = {name: {"schema": {"type": kind}} for name, kind in headers.items()}
        return answer

    operation = document["paths"][GENERATIONS_ROUTE]["post"]
    operation["security"] = [{"bearer": []}]
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GenerationRequest"}}},
    }
    operation["responses"] = {
        "200": {"description": "The audio (16-bit PCM WAV)", "content": {"audio/wav": {}}},
        "400": error("The body is not valid JSON"),
        "401": error("Missing or wrong API key", **{"WWW-Authenticate": "string"}),
        "413": error(
            f"The body is over {TEXT_BODY_BYTES} bytes, or {MAX_BODY_BYTES} with a Content-Length "
            "(room for parameters.init_audio)"
        ),
        "422": error("A parameter is invalid; `param` names it"),
        "503": error(
            "The queue is full, or two audio sources are arriving; retry later", **{"Retry-After": "integer"}
        ),
    }
    return document
