"""What keeps the endpoint answering when clients misbehave: connection limits and quiet logs.

Uvicorn never closes a connection that has not sent a byte, so a few hundred idle sockets use up
the process's file descriptors; then nothing can connect, and asyncio logs each failed accept.
`guarded_protocol` gives every connection a header timeout and keeps the number of connections
below the descriptor limit by closing the oldest idle one when a new one arrives.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0  # seconds from connecting (or the first byte of a next request) to a full head
KEEP_ALIVE_TIMEOUT = 5.0  # seconds an idle keep-alive connection is kept
# asyncio accepts up to `ACCEPT_BACKLOG` connections per loop turn before any of them can be
# closed, so the cap keeps a few turns' worth of descriptors free (and some for the model's files).
ACCEPT_BACKLOG = 64
DESCRIPTORS_KEPT = 4 * ACCEPT_BACKLOG
LOG_EVERY = 10.0  # seconds between two log lines about the same overload


class RateLimitedLog:
    """Log one line per `every` seconds, with how many events were folded into it."""

    def __init__(self, logger: logging.Logger, every: float = LOG_EVERY) -> None:
        self.logger = logger
        self.every = every
        self._last = float("-inf")
        self._folded = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            self._folded += 1
            return
        folded, self._folded, self._last = self._folded, 0, now
        self.logger.warning("%s%s", message, f" ({folded} more like it not logged)" if folded else "")


def connection_cap() -> int:
    """The most connections to hold open: the descriptor limit less those in use and a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65_536
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: assume the model's files and libraries hold a few dozen
        in_use = 64
    return max(8, soft - in_use - DESCRIPTORS_KEPT)


def guarded_protocol(max_connections: int, header_timeout: float = HEADER_TIMEOUT) -> type[H11Protocol]:
    """An h11 protocol class with a header timeout and a cap on open connections."""
    overload = RateLimitedLog(log)

    class GuardedProtocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._opened_at = time.monotonic()
            self._header_timer = None
            self._arm_header_timer()
            if len(self.connections) > max_connections:
                self._make_room()

        def _busy(self) -> bool:
            """True while a request is being read or answered."""
            return self.cycle is not None and not self.cycle.response_complete

        def _make_room(self) -> None:
            idle = [c for c in self.connections if c is not self and not c._busy()]
            victim = min(idle, key=lambda c: c._opened_at) if idle else self
            victim.transport.abort()
            overload.warning(
                f"{max_connections} connections open (the cap below the descriptor limit): "
                "closing the oldest idle ones"
            )

        def _arm_header_timer(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout, self._header_timed_out)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timed_out(self) -> None:
            self._header_timer = None
            if not self._busy() and not self.transport.is_closing():
                self.transport.abort()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._busy():
                self._disarm_header_timer()
            elif not self.transport.is_closing():
                self._arm_header_timer()  # part of the next request's head: it must complete in time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

    return GuardedProtocol


def quiet_exception_handler(loop, context: dict) -> None:
    """asyncio's handler, but each kind of message logged at most once per `LOG_EVERY` seconds.

    When descriptors run out anyway, asyncio reports every failed accept; one line is enough.
    """
    message = str(context.get("message", "unexpected event-loop error"))
    limiter = _limiters.setdefault(message, RateLimitedLog(logging.getLogger("asyncio")))
    exception = context.get("exception")
    limiter.warning(f"{message}: {type(exception).__name__}: {exception}" if exception else message)


_limiters: dict[str, RateLimitedLog] = {}


class HideQueryStrings(logging.Filter):
    """Remove query strings from uvicorn's access log: a key sent as ``?api_key=`` is not logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?<hidden>", *args[3:])
        return True


HIDE_QUERY_STRINGS = HideQueryStrings()
