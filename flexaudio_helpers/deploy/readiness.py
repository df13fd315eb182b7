"""Waiting for an endpoint: poll its status until ``running``, then prove it with one request.

Even at ``running`` a FlexAI endpoint may still be loading the 5 GB model, so readiness is
confirmed by a real (small, cheap) generation, retrying server errors and refused connections.

Every wait ends: at ``running``, at a terminal status (failed, error, rejected, stopped, deleted),
when the endpoint is being stopped or deleted, at the timeout, or when ``inspect`` keeps failing
longer than a grace period (it may fail for a while just after ``serve``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from ..errors import (
    CommandFailed,
    DeploymentTimeout,
    EndpointFailed,
    FlexAudioError,
    InvalidAudioResponse,
)
from ..params import GenerationRequest
from ..protocol import GENERATIONS_ROUTE, sniff_format
from ..redact import mask_text
from ..responses import error_for_response
from .endpoint import Endpoint, EndpointInfo

# One second, two steps: the cheapest request that runs the whole pipeline.
PROBE_REQUEST = GenerationRequest.build(
    "A short soft test tone", audio_end_in_s=1.0, num_inference_steps=2, seed=0
)
LOG_LINES_IN_ERRORS = 40
# Statuses that mean someone is stopping or deleting the endpoint: it will not become ready.
WINDING_DOWN = {
    "stop in progress": "stopped",
    "stopping": "stopped",
    "deleting": "deleted",
    "terminating": "deleted",
}
#: How long `inspect` may keep failing (just after create, a network blip) before the wait gives up.
INSPECT_GRACE = 60.0


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
    grace: float = INSPECT_GRACE,
) -> EndpointInfo:
    """Poll `inspect` until the endpoint is ready; raise when it cannot become ready or at `timeout`.

    A failing `inspect` (`CommandFailed`) is retried with growing pauses for up to `grace` seconds
    in a row; an unknown status is shown as it is and waited on.
    """
    started = time.monotonic()
    failing_since: float | None = None
    pause = interval
    while True:
        try:
            info = inspect()
        except CommandFailed as exc:
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= grace or now - started >= timeout:
                raise CommandFailed(
                    f"{exc}\n(`inspect` kept failing for {format_elapsed(now - failing_since)}; "
                    "the endpoint may still come up: call wait_until_ready again.)",
                    command=exc.command,
                    returncode=exc.returncode,
                    output=exc.output,
                ) from None
            show(f"inspect failed, retrying in {pause:.0f} s")
            time.sleep(max(0.0, min(pause, grace - (now - failing_since), timeout - (now - started))))
            pause = min(pause * 2, max(interval, grace / 3))
            continue
        failing_since, pause = None, interval
        elapsed = time.monotonic() - started
        show(f"{info.status or 'unknown'}{'' if info.url or info.terminal else ' (no URL yet)'}")
        if info.ready:
            return info
        winding_down = WINDING_DOWN.get(info.status)
        if winding_down or info.terminal:
            last_logs = last_log_lines(logs)
            what = (
                f"is being {winding_down} (status {info.status!r}), so it will not become ready; "
                "serve it again once that is done"
                if winding_down
                else f"is {info.status!r}"
            )
            raise EndpointFailed(
                f"endpoint {info.name!r} {what} after {format_elapsed(elapsed)}; its last log lines:\n"
                f"{last_logs}",
                status=info.status,
                logs=last_logs,
            )
        if elapsed >= timeout:
            raise DeploymentTimeout(
                f"endpoint {info.name!r} still {info.status!r} after {format_elapsed(elapsed)} "
                f"(timeout {timeout:.0f} s). It may still come up: call wait_until_ready again, "
                "or read deployment.logs(name)."
            )
        time.sleep(max(0.0, min(interval, timeout - elapsed)))


def last_log_lines(logs: Callable[[], str], count: int = LOG_LINES_IN_ERRORS) -> str:
    """The last `count` log lines, or why they could not be read (never raises)."""
    try:
        text = logs()
    except FlexAudioError as exc:
        return f"(logs unavailable: {exc})"
    return "\n".join(text.rstrip().splitlines()[-count:]) or "(no log lines)"


def confirm_endpoint(
    endpoint: Endpoint,
    *,
    timeout: float,
    interval: float,
    show: Callable[[str], None],
    transport: httpx.BaseTransport | None = None,
) -> float:
    """Send one small generation until it returns audio; return the seconds it took.

    5xx and 429 answers and connection errors are retried until `timeout` (the model may still
    be loading); any other answer fails at once with `responses.error_for_response`'s typed
    error (`AuthenticationError` for a refused key, `EndpointNotFound` for a missing route...),
    or `InvalidAudioResponse` when a 200 carries no audio.

    Note: this is a plain httpx POST rather than `AudioClient` so that its retry window
    (minutes, while a model loads) stays separate from the client's per-request retries.
    `transport` is handed to ``httpx.Client`` (tests pass an ``httpx.MockTransport``).
    """
    url = endpoint.require_url().rstrip("/") + GENERATIONS_ROUTE
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    started = time.monotonic()
    last_problem = "no answer yet"
    with httpx.Client(timeout=httpx.Timeout(30.0, read=300.0), transport=transport) as http:
        while time.monotonic() - started < timeout:
            show("confirming with a 1 s test generation")
            try:
                response = http.post(url, json=PROBE_REQUEST.to_body(), headers=headers)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}"
            else:
                if response.status_code == 200 and sniff_format(response.content):
                    return time.monotonic() - started
                problem = _describe(response, endpoint.api_key)
                if response.status_code == 200:
                    raise InvalidAudioResponse(f"the test generation gave no audio: {problem}")
                if response.status_code < 500 and response.status_code != 429:  # retrying will not help
                    raise error_for_response(
                        response,
                        body=PROBE_REQUEST.to_body(),
                        scrub=lambda text: mask_text(text, [endpoint.api_key]),
                        auth_advice=f"the key saved for endpoint {endpoint.name!r} is not the one it expects",
                    )
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
