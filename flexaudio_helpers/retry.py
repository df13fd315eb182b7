"""The client's retry policy: which failures are worth another try, and how long to wait.

A busy endpoint (429, 503), a proxy in front of a restarting one (502, 504) and a dropped or
refused connection are retried a bounded number of times, waiting what ``Retry-After`` asks or
an exponential backoff with jitter. Everything else is returned (or raised) at once.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from .errors import EndpointUnavailable
from .responses import RETRY_STATUSES, server_error

log = logging.getLogger(__name__)

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


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date, capped), or None."""
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


@dataclass(frozen=True)
class RetryPolicy:
    """Up to `max_retries` more attempts, waiting ``backoff * 2**n`` seconds (with jitter) or
    what Retry-After asks. `sleep` is how it waits (tests pass a recorder)."""

    max_retries: int = 4
    backoff: float = 0.5
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff < 0:
            raise ValueError("max_retries and backoff must be at least 0")

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, so that parallel clients do not retry in step."""
        return min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF) * random.uniform(0.5, 1.0)

    def send(
        self, attempt: Callable[[], httpx.Response], *, what: str, scrub: Callable[[str], str] = str
    ) -> httpx.Response:
        """Call `attempt` until it returns an answer not worth retrying, and return that answer.

        `what` (e.g. ``POST https://host/v1/...``) names the call in messages; `scrub` masks
        secrets in them. Raises `EndpointUnavailable` when the retries run out or the connection
        fails in a way retrying cannot fix; errors `attempt` raises itself pass through.
        """
        attempts = self.max_retries + 1
        for number in range(1, attempts + 1):
            status, said = None, None
            try:
                response = attempt()
            except RETRY_ERRORS as exc:
                failure = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
                delay = self.backoff_delay(number)
            except httpx.TransportError as exc:  # e.g. a proxy refusing: retrying will not help
                raise EndpointUnavailable(scrub(f"{what} failed: {type(exc).__name__}: {exc}")) from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                status = response.status_code
                said = scrub(server_error(response)[0])
                failure = f"HTTP {status}: {said}"
                waited = retry_after(response)
                delay = waited if waited is not None else self.backoff_delay(number)
            if number == attempts:
                raise EndpointUnavailable(
                    f"{what} failed after {attempts} attempt{'s' if attempts > 1 else ''}; last: {failure}"
                    + ("" if status else " (is the endpoint running, and is the URL right?)"),
                    status_code=status,
                    server_message=said,
                )
            log.info("%s; retrying in %.2f s (attempt %d of %d)", failure, delay, number + 1, attempts)
            self.sleep(delay)
        raise AssertionError("unreachable")
