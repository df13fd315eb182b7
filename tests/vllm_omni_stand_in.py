"""A stand-in for a vLLM-Omni server serving Stable Audio, built from its source, for the client's tests.

``vllm-omni serve stabilityai/stable-audio-open-1.0 --omni`` needs a GPU and the weights; this is a
small FastAPI app that speaks the same HTTP API and answers a synthesised tone instead of music.
It was written from these files of public GitHub repositories (read, not copied):

- vllm-project/vllm-omni, ``vllm_omni/entrypoints/openai/protocol/audio.py``, commit
  0131cb5560450800b800e889fb849ea2c851bd3f: ``OpenAICreateAudioGenerateRequest``, the request model.
- vllm-project/vllm-omni, ``vllm_omni/entrypoints/openai/serving_audio_generate.py``, commit
  2fbb42fd33843cabf3432929ab65262dadd8d3d3 (the newest version stored): what the server does with it.
- vllm-project/vllm-omni, ``vllm_omni/entrypoints/openai/api_server.py``, commit
  005fd8eae1384e1010cfb1f543b3d7f7540f7817: the routes ``POST /v1/audio/generate``, ``GET /v1/models``
  and ``GET /health``, and how an ``ErrorResponse`` becomes a JSON answer.
- vllm-project/vllm, ``vllm/entrypoints/openai/server_utils.py``, commit
  029329a8eded26d05ef8d4a302a6c9f318817dd8: the validation and HTTPException handlers, and the
  ``--api-key`` middleware.
- vllm-project/vllm, ``vllm/entrypoints/openai/engine/protocol.py``, commit
  040a2cc2a6295ea9c313d86526ff90a103eacb3e: ``ErrorInfo``/``ErrorResponse`` and ``ModelCard``/``ModelList``.

Each behaviour, *documented* (read in the file named) or *assumed* (not read; our best guess):

- documented (protocol/audio.py): the body fields, types, defaults and limits of `AudioGenerateRequest`,
  field for field; a blank ``input`` and ``stream_format="sse"`` are refused. It is a plain pydantic
  ``BaseModel``: unknown fields are ignored and numbers are coerced (pydantic's lax mode).
- documented (api_server.py): ``POST /v1/audio/generate`` answers the audio bytes with a media type;
  an ``ErrorResponse`` is answered as JSON with its ``error.code`` as the status.
- documented (server_utils.py): a body that fails validation gets HTTP 400
  ``{"error": {"message", "type": "Bad Request", "param", "code": 400}}``, the message being the
  validation error's text followed by its list of errors; an ``HTTPException`` gets the same shape
  with its status. With an API key set, paths under ``/v1`` without ``Authorization: Bearer <key>``
  get HTTP 401 ``{"error": "Unauthorized"}``.
- documented (serving_audio_generate.py): 44.1 kHz audio; ``audio_start + audio_length`` is the
  pipeline's ``audio_end_in_s``, and neither is passed without ``audio_length``; the seed seeds a
  generator (the answer carries no seed header).
- documented (api_server.py, engine/protocol.py): ``GET /v1/models`` lists model cards
  ``{"id", "object": "model", "created", "owned_by": "vllm", "root", "parent", "max_model_len",
  "permission"}`` in ``{"object": "list", "data": [...]}``; ``GET /health`` answers ``{"status": "healthy"}``.
- assumed: the served model id is the model argument, ``stabilityai/stable-audio-open-1.0``.
- assumed: the audio is trimmed as diffusers' ``StableAudioPipeline`` does (frames ``int(start * sr)``
  to ``int(end * sr)``); without ``audio_length`` it is the model's longest clip, 47.5545 s.
- assumed: media types ``audio/wav``, ``audio/flac``, ``audio/mpeg``, ``audio/pcm``; ``pcm`` is
  16-bit little-endian interleaved samples.
- assumed: an unknown route gets FastAPI's own 404 ``{"detail": "Not Found"}`` (vLLM's handler is
  registered for FastAPI's HTTPException, not Starlette's, which unknown routes raise).
- stand-in only: the audio is a stereo tone whose pitch follows the seed; ``speed`` is accepted and
  not applied; ``opus`` answers 501; ``model`` is not checked.

`StandIn` runs the app with uvicorn in a thread on 127.0.0.1 and records every request it gets.
"""

from __future__ import annotations

import io
import random
import threading
import time
from http import HTTPStatus
from typing import Literal

import numpy as np
import soundfile
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator

from flexaudio_helpers.deploy.server_process import free_port

MODEL_ID = "stabilityai/stable-audio-open-1.0"
SAMPLE_RATE = 44_100  # documented: serving_audio_generate.py's default_sr
LONGEST_SECONDS = 1024 * 2048 / SAMPLE_RATE  # assumed: the pipeline's default length
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "pcm": "audio/pcm"}


class AudioGenerateRequest(BaseModel):
    """vLLM-Omni's ``OpenAICreateAudioGenerateRequest`` (protocol/audio.py), field for field."""

    input: str
    model: str | None = None
    response_format: Literal["wav", "pcm", "flac", "mp3", "opus"] = "wav"
    speed: float | None = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["sse", "audio"] | None = "audio"
    audio_length: float | None = Field(default=None, gt=0)
    audio_start: float | None = 0.0
    negative_prompt: str | None = None
    guidance_scale: float | None = Field(default=None, ge=0, le=1000)
    num_inference_steps: int | None = Field(default=None, ge=1, le=1000)
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)

    @field_validator("input")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("input cannot be empty")
        return text

    @field_validator("stream_format")
    @classmethod
    def _no_sse(cls, value: str | None) -> str | None:
        if value == "sse":
            raise ValueError("'sse' is not a supported stream_format yet. Please use 'audio'.")
        return value


def error_json(message: str, status: int, param: str | None = None) -> JSONResponse:
    """vLLM's ``ErrorResponse`` as an answer (engine/protocol.py, server_utils.py)."""
    info = {"message": message, "type": HTTPStatus(status).phrase, "param": param, "code": status}
    return JSONResponse({"error": info}, status_code=status)


def tone(request: AudioGenerateRequest) -> np.ndarray:
    """A stereo tone as long as the request asks, its pitch drawn from the seed: (frames, 2) floats."""
    start = request.audio_start if request.audio_start is not None else 0.0
    if request.audio_length is None:
        start, end = 0.0, LONGEST_SECONDS
    else:
        end = start + request.audio_length
    frames = max(int(end * SAMPLE_RATE) - int(start * SAMPLE_RATE), 0)
    seed = request.seed if request.seed is not None else random.getrandbits(32)
    pitch = 220.0 + seed % 440
    wave = 0.5 * np.sin(2 * np.pi * pitch * np.arange(frames) / SAMPLE_RATE)
    return np.stack([wave, wave[::-1]], axis=1)


def encode(samples: np.ndarray, response_format: str) -> bytes:
    """The samples as a file in `response_format` (wav, flac, mp3) or raw 16-bit PCM."""
    if response_format == "pcm":
        return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    buffer = io.BytesIO()
    kind = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", None)}[response_format]
    soundfile.write(buffer, samples, SAMPLE_RATE, format=kind[0], subtype=kind[1])
    return buffer.getvalue()


def build_app(
    api_key: str | None = None, requests: list | None = None, answer_headers: dict | None = None
) -> FastAPI:
    """The stand-in app; every request is appended to `requests` as ``(method, path, body)``.

    `answer_headers` (read at each answer) go out with the audio: a hostile server's extras, such
    as an ``X-Seed`` that vLLM-Omni does not send.
    """
    app = FastAPI()
    seen = requests if requests is not None else []
    extra = answer_headers if answer_headers is not None else {}

    @app.middleware("http")
    async def record_and_authenticate(request: Request, call_next):
        seen.append((request.method, request.url.path, await request.body()))
        authorization = request.headers.get("authorization", "")
        if api_key and request.url.path.startswith("/v1") and authorization != f"Bearer {api_key}":
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = f"{exc} {exc.errors()}" if str(exc.errors()) != str(exc) else str(exc)
        return error_json(message, 400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_json(str(exc.detail), exc.status_code)

    @app.post("/v1/audio/generate")
    async def generate(request: AudioGenerateRequest) -> Response:
        if request.response_format == "opus":
            return error_json("the stand-in does not encode opus", 501)
        data = encode(tone(request), request.response_format)
        return Response(content=data, media_type=MEDIA_TYPES[request.response_format], headers=dict(extra))

    @app.get("/v1/models")
    async def models() -> dict:
        permission = {
            "id": "modelperm-stand-in",
            "object": "model_permission",
            "created": int(time.time()),
            "allow_create_engine": False,
            "allow_sampling": True,
            "allow_logprobs": True,
            "allow_search_indices": False,
            "allow_view": True,
            "allow_fine_tuning": False,
            "organization": "*",
            "group": None,
            "is_blocking": False,
        }
        card = {
            "id": MODEL_ID,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm",
            "root": MODEL_ID,
            "parent": None,
            "max_model_len": None,
            "permission": [permission],
        }
        return {"object": "list", "data": [card]}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "healthy"}

    return app


class StandIn:
    """The stand-in served by uvicorn in a thread on 127.0.0.1; `requests` lists what it received."""

    def __init__(self, api_key: str | None = None) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.answer_headers: dict[str, str] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            build_app(api_key, self.requests, self.answer_headers),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def count(self, method: str = "POST") -> int:
        """How many `method` requests arrived."""
        return sum(1 for seen in self.requests if seen[0] == method)

    def __enter__(self) -> StandIn:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the vLLM-Omni stand-in did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
