"""Waiting for an endpoint: poll its status until ``running``, then prove it with one request.

Even at ``running`` a FlexAI endpoint may still be loading the 5 GB model, so readiness is
confirmed by a real (small, cheap) generation. Every wait ends: at ``running``, at a terminal or
winding-down status, at the timeout, or when ``inspect`` keeps failing past a grace period.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from ..errors import (
    AuthenticationError,
    CommandFailed,
    DeploymentTimeout,
    EndpointFailed,
    EndpointUnavailable,
    FlexAudioError,
    GenerationFailed,
)
from ..params import GenerationRequest
from .endpoint_info import WINDING_DOWN, Endpoint, EndpointInfo

# One second, two steps: the cheapest request that runs the whole pipeline.
PROBE_REQUEST = GenerationRequest.build(
    "A short soft test tone", audio_end_in_s=1.0, num_inference_steps=2, seed=0
)
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
    grace: float,
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

    The client's own retries are off: this loop is the longer window (minutes, while a model
    loads) in which a busy or unreachable endpoint and 5xx answers are tried again. Anything else
    fails at once with the client's typed error. `transport` goes to the client (tests' mocks).
    """
    started = time.monotonic()
    last_problem = "no answer yet"
    client = endpoint.client(connect_timeout=30.0, read_timeout=300.0, max_retries=0, transport=transport)
    with client:
        while time.monotonic() - started < timeout:
            show("confirming with a 1 s test generation")
            try:
                client.generate(PROBE_REQUEST)
                return time.monotonic() - started
            except AuthenticationError as exc:
                raise AuthenticationError(
                    f"endpoint {endpoint.name!r} refused the key saved for it: {exc}",
                    status_code=exc.status_code,
                    server_message=exc.server_message,
                ) from None
            except (EndpointUnavailable, GenerationFailed) as exc:
                if isinstance(exc, GenerationFailed) and (exc.status_code or 0) < 500:  # e.g. a redirect
                    raise
                last_problem = str(exc)
            show(f"not answering yet ({last_problem}); retrying")
            time.sleep(interval)
    raise DeploymentTimeout(
        f"endpoint {endpoint.name!r} reports running but did not generate within {timeout:.0f} s "
        f"(last: {last_problem}). The model may still be loading: call wait_until_ready again."
    )
