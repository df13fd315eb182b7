"""Waiting for an endpoint: poll its status until ``running``, then prove it with one request.

Even at ``running`` a FlexAI endpoint may still be loading the 5 GB model, so readiness is
confirmed by a real (small, cheap) generation, retrying server errors and refused connections.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from ..errors import (
    AuthenticationError,
    DeploymentTimeout,
    EndpointFailed,
    EndpointNotFound,
    FlexAudioError,
    InvalidAudioResponse,
)
from ..params import GenerationRequest
from ..protocol import GENERATIONS_ROUTE
from .endpoint import Endpoint, EndpointInfo
from .redact import mask_text

# One second, two steps: the cheapest request that runs the whole pipeline.
PROBE_REQUEST = GenerationRequest.build(
    "A short soft test tone", audio_end_in_s=1.0, num_inference_steps=2, seed=0
)
AUDIO_MAGIC = (b"RIFF", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")
LOG_LINES_IN_ERRORS = 40


def format_elapsed(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def wait_for_running(
    inspect: Callable[[], EndpointInfo],
    logs: Callable[[], str],
    *,
    timeout: float,
    interval: float,
    show: Callable[[str], None],
) -> EndpointInfo:
    """Poll `inspect` until the endpoint is ready; raise on a terminal status or the timeout."""
    started = time.monotonic()
    while True:
        info = inspect()
        elapsed = time.monotonic() - started
        show(f"{info.status or 'unknown'}{'' if info.url or info.terminal else ' (no URL yet)'}")
        if info.ready:
            return info
        if info.terminal:
            last_logs = last_log_lines(logs)
            raise EndpointFailed(
                f"endpoint {info.name!r} is {info.status!r} after {format_elapsed(elapsed)}; "
                f"its last log lines:\n{last_logs}",
                status=info.status,
                logs=last_logs,
            )
        if elapsed >= timeout:
            raise DeploymentTimeout(
                f"endpoint {info.name!r} still {info.status!r} after {format_elapsed(elapsed)} "
                f"(timeout {timeout:.0f} s). It may still come up: call wait_until_ready again, "
                "or read deployment.logs(name)."
            )
        time.sleep(interval)


def last_log_lines(logs: Callable[[], str], count: int = LOG_LINES_IN_ERRORS) -> str:
    """The last `count` log lines, or why they could not be read (never raises)."""
    try:
        text = logs()
    except FlexAudioError as exc:
        return f"(logs unavailable: {exc})"
    return "\n".join(text.rstrip().splitlines()[-count:]) or "(no log lines)"


def looks_like_audio(body: bytes) -> bool:
    """True when the body starts like WAV, FLAC, Ogg or MP3 (the header may not be trusted)."""
    return body.startswith(AUDIO_MAGIC)


def confirm_endpoint(
    endpoint: Endpoint, *, timeout: float, interval: float, show: Callable[[str], None]
) -> float:
    """Send one small generation until it returns audio; return the seconds it took.

    5xx answers and connection errors are retried until `timeout` (the model may still be
    loading); a refused key, a missing route or any other answer fails at once.

    Note: this is a plain httpx POST rather than `AudioClient` so that its retry window
    (minutes, while a model loads) stays separate from the client's per-request retries.
    """
    url = endpoint.require_url().rstrip("/") + GENERATIONS_ROUTE
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    started = time.monotonic()
    last_problem = "no answer yet"
    with httpx.Client(timeout=httpx.Timeout(30.0, read=300.0)) as http:
        while time.monotonic() - started < timeout:
            show("confirming with a 1 s test generation")
            try:
                response = http.post(url, json=PROBE_REQUEST.to_body(), headers=headers)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}"
            else:
                if response.status_code == 200 and looks_like_audio(response.content):
                    return time.monotonic() - started
                problem = _describe(response, endpoint.api_key)
                if response.status_code in (401, 403):
                    raise AuthenticationError(f"endpoint {endpoint.name!r} refused the API key: {problem}")
                if response.status_code == 200:
                    raise InvalidAudioResponse(f"the test generation gave no audio: {problem}")
                if response.status_code == 404:
                    raise EndpointNotFound(f"nothing answers POST {url}: {problem}")
                if response.status_code < 500 and response.status_code != 429:
                    raise FlexAudioError(f"the test generation on {endpoint.name!r} failed: {problem}")
                last_problem = problem
            show(f"not answering yet ({last_problem}); retrying")
            time.sleep(interval)
    raise DeploymentTimeout(
        f"endpoint {endpoint.name!r} reports running but did not generate within {timeout:.0f} s "
        f"(last: {last_problem}). The model may still be loading: call wait_until_ready again."
    )


def _describe(response: httpx.Response, api_key: str | None) -> str:
    body = response.text[:300] if "audio" not in response.headers.get("content-type", "") else ""
    return mask_text(f"HTTP {response.status_code} {body}".strip(), [api_key])
