"""`AudioClient`: generate clips from any FlexServe-compatible text-to-audio endpoint.

It posts the shared parameter model (`params.GenerationRequest`) to ``{url}/v1/audios/generations``
with a bearer key and returns a `Clip`. Timeouts are explicit (short connect, long read), a busy
or unreachable endpoint is retried by a `retry.RetryPolicy`, every failure is a typed error from
`errors` carrying the server's message and field, and the API key never appears in a repr, a log
line, an exception or a URL. Like httpx's ``Client``, it takes a ``transport=`` (tests pass an
``httpx.MockTransport``). It speaks vLLM-Omni's Stable Audio API as well, when told to
(``api="vllm-omni"`` or ``INFERENCE_API=vllm-omni``; see `apis`).

    from flexaudio_helpers.client import AudioClient

    with AudioClient() as client:  # INFERENCE_URL / INFERENCE_API_KEY, or a .env file
        clip = client.generate("Rain on a tin roof", audio_end_in_s=5.0, seed=1)
        takes = client.variations("Rain on a tin roof", 4, audio_end_in_s=5.0)  # seeds s..s+3
        again = client.generate("Rain on a tin roof", init_audio=clip, init_noise_level=2.0)

Audio-to-audio (``init_audio``) is this project's extension of the FlexServe API: it runs on
our local endpoint (and in this process: `inprocess`), which lists it in ``GET /v1/models``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpx

from . import __version__, apis, init_audio
from .audio import Clip, warn_if_silent
from .batch import BatchResult, generate_many
from .errors import (
    AuthenticationError,
    EndpointNotConfigured,
    EndpointNotFound,
    FlexAudioError,
    GenerationFailed,
    GenerationTimeout,
    UnsupportedParameter,
)
from .inputs import as_request
from .params import (
    ALLOWED,
    CHANNELS,
    MAX_AUDIO_SECONDS,
    MAX_SEED,
    RANDOM_SEED_LIMIT,
    GenerationRequest,
    check_count,
)
from .protocol import (
    GENERATION_SECONDS_HEADER,
    GENERATIONS_ROUTE,
    INFERENCE_API_ENV,
    INFERENCE_API_KEY_ENV,
    INFERENCE_URL_ENV,
    INIT_AUDIO_EXTENSION,
    KEEP_RANGES_EXTENSION,
    MODELS_ROUTE,
    OFFLINE_HEADER,
    QUEUE_SECONDS_HEADER,
    key_header_problem,
)
from .redact import display_url, mask_values
from .responses import error_for_response, header_number, read_bounded, seed_header, server_error
from .retry import RetryPolicy
from .settings import endpoint_settings, resolve
from .urls import INSPECT_HINT, join_route, normalise_url, not_found_advice

log = logging.getLogger(__name__)
# Our extensions of the FlexServe API, for refusals: what each does, and where else it runs.
EXTENSION_WORDS = {
    INIT_AUDIO_EXTENSION: ("audio-to-audio", "generate_here"),
    KEEP_RANGES_EXTENSION: ("keeping part of a window (extend, loop, repaint)", "on a load_generator()"),
}

# The largest real answer is 47.55 s of 16-bit stereo WAV, about 17 MB; 64 MiB leaves room for
# float WAV or other formats, and stops an endless or decompressing body long before it hurts.
MAX_RESPONSE_BYTES = 64 * 2**20
# Decoded samples (all channels) allowed in an answer: twice the model's longest clip at 48 kHz.
MAX_DECODED_SAMPLES = int(2 * CHANNELS * 48_000 * MAX_AUDIO_SECONDS)
EXTRA_SECONDS = 120.0  # the overall deadline per request: read_timeout plus this, unless given
KEY_ADVICE = f"check the key ({INFERENCE_API_KEY_ENV}, or the api_key given) belongs to this endpoint"
NO_KEY_ADVICE = f"no API key was sent: pass api_key=... or set {INFERENCE_API_KEY_ENV} (environment or .env)"
# Variations in flight at once: one generating while the next is sent (the endpoint runs one at a time).
VARIATIONS_CONCURRENCY = 2


def check_key(api_key: str) -> None:
    """Raise `AuthenticationError` (without the key) unless it can be sent in a header."""
    problem = key_header_problem(api_key)
    if problem:
        raise AuthenticationError(
            f"{problem} (a space, a control character or a non-ASCII letter); check how it was "
            f"copied into {INFERENCE_API_KEY_ENV} or api_key=..."
        )


class AudioClient:
    """Generate audio clips from a FlexServe-compatible endpoint.

    `url` is the endpoint's base URL (``/v1/audios/generations`` is added; a pasted route or
    ``/v1`` is removed) and `api_key` its bearer key. Without `url`, both come from one source:
    ``INFERENCE_URL``/``INFERENCE_API_KEY`` in the environment, else in a ``.env`` file (`env_file`,
    else the working folder's or the project's: `settings`); with `url`, the key defaults to
    ``INFERENCE_API_KEY`` (environment, then ``.env``). `read_timeout` must cover a whole generation on
    a cold endpoint (200 steps of 47 s audio). Failed connections and 429/502/503/504 answers
    are retried `max_retries` times, waiting ``backoff * 2**n`` seconds (with jitter) or what
    Retry-After asks (`retry`, a `RetryPolicy`, holds that policy).

    What a server can make the client do is bounded: an answer over `max_response_bytes` (or
    audio that decodes to over `max_decoded_samples`) is refused with `ResponseTooLarge`, error
    pages are read only in part, and each attempt ends by `total_timeout` seconds (default
    `read_timeout` + 120) however slowly the bytes trickle in. `transport` is handed to
    ``httpx.Client`` (e.g. an ``httpx.MockTransport``).

    `api` is the API spoken (`apis`): ``"flexserve"`` (FlexAI and our local endpoint),
    ``"vllm-omni"`` (vLLM-Omni's Stable Audio API; ``apis.VllmOmni(response_format="flac")`` asks
    for FLAC or MP3), or ``"auto"`` (read from ``GET /v1/models`` on first use, only when
    unambiguous); it defaults to ``INFERENCE_API``, then FlexServe.

    Raises `EndpointNotConfigured` (no usable URL), `AuthenticationError` (a key that cannot be
    sent in a header) and `ValueError` (a limit out of range).
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
        transport: httpx.BaseTransport | None = None,
        api: str | apis.Api | None = None,
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0 or (total_timeout is not None and total_timeout <= 0):
            raise ValueError("connect_timeout, read_timeout and total_timeout must be positive")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be positive")
        self.retry = RetryPolicy(max_retries=max_retries, backoff=backoff)  # checks both
        if url is None:  # the URL and the key from one source, never mixed
            url, found_key, _ = endpoint_settings(env_file)
        else:
            found_key = resolve(INFERENCE_API_KEY_ENV, env_file=env_file)[INFERENCE_API_KEY_ENV]
        if not url:
            raise EndpointNotConfigured(
                f"no endpoint URL: pass url=..., or set {INFERENCE_URL_ENV} (in the environment or a .env "
                f"file) to the endpoint's base URL, e.g. from `{INSPECT_HINT}`"
            )
        api_setting = None if api is not None else resolve(INFERENCE_API_ENV, env_file=env_file)
        # None: "auto", detected from /v1/models on first use
        self._api = apis.choose(api, api_setting and api_setting[INFERENCE_API_ENV])
        self._api_key = (api_key if api_key is not None else found_key) or None
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
        self.total_timeout = total_timeout if total_timeout is not None else read_timeout + EXTRA_SECONDS
        self.max_response_bytes = max_response_bytes
        self.max_decoded_samples = max_decoded_samples
        # No pool timeout: generate_many bounds the concurrency itself.
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=60.0, pool=None)
        # identity: no compressed answers, so none can decompress into more than was sent.
        headers = {"User-Agent": f"flexaudio/{__version__}", "Accept-Encoding": "identity"}
        self._http = httpx.Client(
            timeout=timeout, headers=headers, follow_redirects=False, transport=transport
        )
        self.extensions = ListedExtensions(self)  # read from GET /v1/models when first needed

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
    def api(self) -> apis.Api:
        """The API spoken; with ``api="auto"``, read from ``GET /v1/models`` the first time."""
        if self._api is None:
            try:
                models = self.models()
            except EndpointNotFound:  # no /v1/models: nothing to tell the APIs apart by
                models = None
            self._api = apis.detect(models)
        return self._api

    @property
    def generations_url(self) -> str:
        """Where generation requests go."""
        return join_route(self.url, self.api.route)

    def _scrub(self, text: str) -> str:
        return mask_values(text, [self._api_key])  # should a server echo the key back

    def _call(self, method: str, route: str, body: dict | None = None, advice: str = "") -> httpx.Response:
        """One call under the retry policy; returns the answer, raising the typed error if it failed."""
        url = join_route(self.url, route)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        response = self.retry.send(
            lambda: self._attempt(method, url, body, headers),
            what=f"{method} {display_url(url)}",
            scrub=self._scrub,
        )
        if not response.is_success:
            raise error_for_response(
                response,
                body=body,
                scrub=self._scrub,
                auth_advice=KEY_ADVICE if self._api_key else NO_KEY_ADVICE,
                not_found_advice=not_found_advice(self.url, self.removed_suffixes) + advice,
            )
        return response

    def _attempt(self, method: str, url: str, body: dict | None, headers: dict) -> httpx.Response:
        """One attempt, its body streamed and checked against the size limit and the deadline.

        The answer comes back fully read (error bodies only in part: `responses.read_bounded`).
        """
        started = time.monotonic()
        request = self._http.build_request(method, url, json=body, headers=headers)
        try:
            response = self._http.send(request, stream=True)
            try:
                content = read_bounded(
                    response,
                    max_bytes=self.max_response_bytes,
                    total_timeout=self.total_timeout,
                    started=started,
                )
            finally:
                response.close()
        except httpx.ReadTimeout:
            raise GenerationTimeout(
                f"no answer from {display_url(url)} within the read timeout of {self.read_timeout:g} s "
                "(not retried: the endpoint may still be working; a cold endpoint or many steps "
                "can need longer: AudioClient(read_timeout=...))"
            ) from None
        # A fresh response over the bytes read: already decoded, so without Content-Encoding.
        skip = {b"content-encoding", b"content-length", b"transfer-encoding"}
        kept = [(name, value) for name, value in response.headers.raw if name.lower() not in skip]
        return httpx.Response(response.status_code, headers=kept, content=content, request=request)

    # ----- the API ---------------------------------------------------------------------------
    def generate(
        self,
        prompt_or_request: Any,
        /,
        *,
        init_audio: Any = None,
        init_noise_level: float | None = None,
        **parameters: Any,
    ) -> Clip:
        """Generate one clip from a prompt (with keyword parameters), a body dict or a request.

        The request is validated before anything is sent. The clip holds the request, the seed
        the endpoint used (``X-Seed``) and its timings: ``request`` (wall clock, retries
        included), ``generation`` and ``queue`` (from the endpoint).

        Audio-to-audio: `init_audio` (a `Clip`, an audio file path or a ``(samples, rate)`` pair,
        at most 47.55 s) is where denoising starts, under `init_noise_level` of noise (above 0.3
        up to 500, default 1.0; higher keeps less of the source). It is sent as 16-bit FLAC, and
        only to an endpoint whose ``GET /v1/models`` lists the ``init_audio`` extension (our local
        endpoint); the clip's request records the level, not the audio.

        Raises `InvalidParameters` (naming the field: refused locally, or HTTP 400/413/422),
        `UnsupportedParameter` (audio-to-audio on an endpoint without the extension, before the
        generation is sent), `AuthenticationError` (401/403), `EndpointNotFound` (404/405),
        `EndpointUnavailable` (busy or unreachable after the retries), `GenerationTimeout` (no
        answer within `read_timeout`, or still sending after `total_timeout`), `GenerationFailed`
        (500, a redirect, another status), `ResponseTooLarge`, `InvalidAudioResponse` (not audio,
        or truncated), `InvalidResponse` (a bad ``X-Seed``) and, with ``api="auto"``,
        `EndpointNotConfigured` (``/v1/models`` does not show one API). All are `FlexAudioError`s.
        """
        return self._send(self._prepare(prompt_or_request, init_audio, init_noise_level, parameters))

    def variations(self, prompt_or_request: Any, count: int, /, **parameters: Any) -> list[Clip]:
        """`count` (1 to `params.MAX_VARIATIONS`) clips of one request; clip k has seed base + k.

        The base is the request's seed, else one drawn here (logged, and clip 0's seed). Each
        variation is a request of its own, `VARIATIONS_CONCURRENCY` (2) in flight at a time,
        and each clip records its seed, so any one replays alone: our endpoint runs requests one
        at a time, so variation k is the same samples as a single request with its seed. (In one
        pipeline call, `AudioGenerator.variations`, that holds in bf16; in fp32 it differs by up
        to 2e-8.) The same call with the same seed gives the same clips. Takes what `generate`
        takes, ``init_audio`` and ``init_noise_level`` included; everything is checked before
        anything is sent.

        Raises what `generate` raises (the first failure, once every variation has finished), and
        `InvalidParameters` naming ``count`` for a count out of range.
        """
        check_count(count)
        source = parameters.pop("init_audio", None)
        level = parameters.pop("init_noise_level", None)
        request = self._prepare(prompt_or_request, source, level, parameters)
        base = request.parameters.seed
        if base is None:
            base = secrets.randbelow(RANDOM_SEED_LIMIT)
            log.info("variations: seeds %d to %d (drawn)", base, base + count - 1)
        requests = [request.with_parameters(seed=(base + k) % (MAX_SEED + 1)) for k in range(count)]
        for each in requests:
            self.api.body(each)  # what this API cannot say is refused before the first is sent
        results = generate_many(self._send, requests, concurrency=VARIATIONS_CONCURRENCY, progress=False)
        for result in results:
            if not result.ok:
                raise result.error
        return [result.clip for result in results]

    def window(self, prompt_or_request: Any, audio: Any, keep_ranges: list, /, **parameters: Any) -> Clip:
        """One whole window (47.55 s) that keeps `keep_ranges` ([start, end] seconds) of `audio` (a
        `Clip`, a file or ``(samples, rate)``, laid from the window's start) and generates the rest.

        Our local endpoint's ``keep_ranges`` extension (one request; `longer.extend`, `loop` and
        `repaint` chain such windows through a client). Raises `UnsupportedParameter` before
        anything is sent when the endpoint does not list it (FlexAI's FlexServe, vLLM-Omni), and
        what `generate` raises.
        """
        self.extensions.require(KEEP_RANGES_EXTENSION)
        request = as_request(prompt_or_request, **parameters).with_parameters(
            init_audio=init_audio.encode(audio), keep_ranges=[list(pair) for pair in keep_ranges]
        )
        return self._send(request)

    def _prepare(
        self, prompt_or_request: Any, source: Any, level: float | None, parameters: dict[str, Any]
    ) -> GenerationRequest:
        """The request to send, validated; with a source, encoded into it (after the endpoint
        was checked to take one)."""
        if level is not None:
            parameters = {**parameters, "init_noise_level": level}
        request = as_request(prompt_or_request, **parameters)
        if source is not None:
            request = request.with_parameters(init_audio=init_audio.encode(source))
        request = request.for_source(request.parameters.init_audio is not None)
        if request.parameters.init_audio is not None:
            self.extensions.require(INIT_AUDIO_EXTENSION)
        return request

    def _send(self, request: GenerationRequest) -> Clip:
        """POST one prepared request; the clip records it without its source's audio."""
        body = self.api.body(request)
        started = time.perf_counter()
        try:
            response = self._call("POST", self.api.route, body, advice=apis.not_found_advice(self.api))
        except GenerationTimeout as exc:
            raise GenerationTimeout(f"{exc}{device_speed(self, request)}") from None
        timings = {"request": time.perf_counter() - started}
        for key, header in (("generation", GENERATION_SECONDS_HEADER), ("queue", QUEUE_SECONDS_HEADER)):
            value = header_number(response, header)
            if value is not None:
                timings[key] = value
        if request.parameters.init_audio is not None:
            request = request.with_parameters(init_audio=None, keep_ranges=None)
        seed = seed_header(response, self.api.max_seed)  # out of the API's range: InvalidResponse
        clip = Clip.from_bytes(
            response.content,
            request=request,
            seed=seed if self.api.seed_from_header else request.parameters.seed,
            max_samples=self.max_decoded_samples,
            timings=timings,
            offline=response.headers.get(OFFLINE_HEADER, "").lower() == "true",
        )
        warn_if_silent(clip.samples, f"the clip of seed {clip.seed}")
        return clip

    def generate_many(
        self,
        requests: Iterable[Any],
        *,
        concurrency: int = 2,
        progress: bool = True,
        out_dir: str | os.PathLike | None = None,
    ) -> list[BatchResult]:
        """Generate several clips, `concurrency` at a time, with a progress bar (`batch`).

        `requests` are prompts, body dicts or `GenerationRequest`s. Results come back in input
        order; a failed item holds its error (any that `generate` raises) and the others are
        kept. With `out_dir`, each clip is saved as it arrives (atomically, as ``NNNN-prompt.wav``)
        and ``manifest.jsonl`` lists every item (request, seed, path or error). Items whose file
        already holds the same request are loaded instead of generated, so running a batch again
        completes only the missing ones.

        Raises `ValueError` when `concurrency` is below 1, and `OSError` when `out_dir` cannot
        be written.
        """
        return generate_many(
            self.generate, requests, concurrency=concurrency, progress=progress, out_dir=out_dir
        )

    def models(self) -> dict:
        """What ``GET /v1/models`` says about the served model.

        Raises the same errors as `generate` for a failed call, and `GenerationFailed` when the
        answer is not JSON.
        """
        response = self._call("GET", MODELS_ROUTE)
        try:
            return response.json()
        except ValueError:
            raise GenerationFailed(
                f"GET {display_url(str(response.url))} did not answer JSON: {server_error(response)[0]}"
            ) from None

    def curl_command(self, prompt_or_request: Any, /, *, output: str = "clip.wav", **parameters: Any) -> str:
        """The same request as a ``curl`` command, in the tutorial's layout.

        The key appears as ``$INFERENCE_API_KEY``, never its value. Raises `InvalidParameters`
        for an invalid request.
        """
        request = as_request(prompt_or_request, **parameters)
        body = json.dumps(self.api.body(request), indent=2, ensure_ascii=False)
        return " \\\n  ".join(
            [
                "curl -X POST",
                f'-H "Authorization: Bearer ${INFERENCE_API_KEY_ENV}"',
                "-H 'Content-Type: application/json'",
                f"-d {shlex.quote(body)}",
                f"-o {shlex.quote(output)}",
                shlex.quote(self.generations_url),
            ]
        )


class ListedExtensions:
    """Which of this project's extensions (``init_audio``, ``keep_ranges``) an endpoint lists in
    ``GET /v1/models``: read once per client, on first need."""

    def __init__(self, client: AudioClient) -> None:
        self.client = client
        self._extensions: frozenset[str] | None = None
        self._lock = threading.Lock()

    def require(self, extension: str) -> None:
        """Raise `UnsupportedParameter` unless the endpoint lists `extension` (``init_audio``, or
        ``keep_ranges``: extend, loop and repaint)."""
        what, here = EXTENSION_WORDS[extension]
        refusal = (
            f"{extension}: {what} runs on this project's local endpoint (flexaudio serve, or "
            f"python -m flexaudio_helpers.serving) or in this process ({here}) only: "
        )
        if self.client.api.name != apis.FLEXSERVE:
            raise UnsupportedParameter(
                refusal + f"{self.client.api.label}'s API does not document it; nothing was sent",
                field=extension,
                allowed=ALLOWED[extension],
            )
        with self._lock:
            if self._extensions is None:
                try:
                    cards = self.client.models().get("data")
                except EndpointNotFound:  # FlexAI's FlexServe documents no /v1/models
                    cards = None
                self._extensions = frozenset(
                    extension
                    for card in (cards if isinstance(cards, list) else [])
                    if isinstance(card, dict) and isinstance(card.get("extensions"), list)
                    for extension in card["extensions"]
                    if isinstance(extension, str)
                )
        if extension not in self._extensions:
            raise UnsupportedParameter(
                refusal + f"{display_url(self.client.url)} does not list the {extension!r} extension in "
                f"GET {MODELS_ROUTE} (FlexAI's FlexServe API does not document it); nothing was sent",
                field=extension,
                allowed=ALLOWED[extension],
            )


def device_speed(client: AudioClient, request: GenerationRequest) -> str:
    """Why a generation outlasted the read timeout, when the endpoint says how fast its device is
    (our endpoint's ``seconds_per_step`` in ``/v1/models``, e.g. minutes on Apple's MPS)."""
    try:
        model = client.models()["data"][0]
        per_step = float(model["seconds_per_step"])
    except (FlexAudioError, LookupError, TypeError, ValueError):
        return ""
    steps = request.parameters.num_inference_steps
    need = f": {steps} steps need about {steps * per_step:.0f} s" if steps else ""
    return f". Its device ({model.get('device')}) takes about {per_step:.2g} s per step{need}"
