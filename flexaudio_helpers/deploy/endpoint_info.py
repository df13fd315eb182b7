"""What a deployment hands back: an `Endpoint` to call and an `EndpointInfo` to look at, and the
words an endpoint's status may hold."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..client import AudioClient
from ..errors import EndpointUnavailable

# The endpoint-status vocabulary, one home for every target (FlexAI's words; local uses a few).
READY_STATUS = "running"
# Words that mean the endpoint will not become ready by waiting longer.
TERMINAL_WORDS = (
    "fail",
    "error",
    "rejected",
    "stopped",
    "terminated",
    "cancel",
    "crash",
    "killed",
    "deleted",
)
# Statuses that mean someone is stopping or deleting the endpoint (-> what it will be).
WINDING_DOWN = {
    "stop in progress": "stopped",
    "stopping": "stopped",
    "deleting": "deleted",
    "terminating": "deleted",
}
# What counts as "delete happened" (a terminal "deleting" included) and as "stop happened".
GONE_STATUSES = ("deleting", "deleted", "terminating", "terminated")
STOPPED_STATUSES = (*GONE_STATUSES, "stopped", "stopping", "stop in progress", "suspended", "paused")
GONE = "gone"  # not a status FlexAI reports: neither `inspect` nor `list` knows the endpoint


@dataclass(frozen=True, repr=False)
class Endpoint:
    """Where to send generation requests: a base URL (no ``/v1``) and its API key.

    The key never appears in the repr. `client()` gives an `AudioClient` for it.
    """

    name: str
    url: str | None
    api_key: str | None = field(default=None, repr=False)
    target: str = ""
    model: str | None = None

    def __repr__(self) -> str:
        key = "<hidden>" if self.api_key else None
        return (
            f"Endpoint(name={self.name!r}, url={self.url!r}, api_key={key}, "
            f"target={self.target!r}, model={self.model!r})"
        )

    def require_url(self) -> str:
        """The URL, or a clear error when the endpoint has none yet."""
        if not self.url:
            raise EndpointUnavailable(
                f"endpoint {self.name!r} has no URL yet: call deployment.wait_until_ready({self.name!r})"
            )
        return self.url

    def client(self, **options: Any) -> AudioClient:
        """An `AudioClient` for this endpoint (options go to its constructor)."""
        # "" rather than None: no key read from elsewhere is ever sent to this endpoint.
        return AudioClient(self.require_url(), self.api_key or "", **options)


@dataclass(frozen=True)
class EndpointInfo:
    """One look at an endpoint: its status, its URL once it has one, and the raw facts.

    `raw` is the JSON the target reported (``flexai inference inspect -j``, or the local
    record) with secrets masked, kept for display.
    """

    name: str
    status: str
    url: str | None
    target: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ready(self) -> bool:
        """Running and with a URL (FlexAI reports the URL only once it is up)."""
        return self.status == READY_STATUS and bool(self.url)

    @property
    def terminal(self) -> bool:
        """True for failed/stopped/error-like statuses: waiting longer will not help."""
        return any(word in self.status.lower() for word in TERMINAL_WORDS)

    def to_json(self) -> str:
        """The raw facts as indented JSON (secrets already masked)."""
        return json.dumps(self.raw, indent=2, sort_keys=True, default=str)
