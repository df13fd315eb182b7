"""The one interface both targets offer, so a notebook cell reads the same for FlexAI and local."""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod

from tqdm.std import tqdm

from ..params import MODEL_ID
from ..protocol import INFERENCE_URL_ENV
from . import store
from .endpoint_info import Endpoint, EndpointInfo
from .readiness import confirm_endpoint, format_elapsed, wait_for_running


class Deployment(ABC):
    """A place to serve Stable Audio Open: FlexAI's cloud or this machine."""

    target: str = ""
    #: What `serve` does on this target, for the message shown when INFERENCE_URL overrides it.
    serve_verb: str = "serve"
    #: Why `connect()` chose this target, in one sentence (notebooks print it).
    reason: str = ""
    #: Seconds between status polls in `wait_until_ready`.
    poll_interval: float = 10.0
    #: Seconds allowed for the confirming test generation once the status is ``running``.
    confirm_timeout: float = 600.0
    #: Seconds `inspect` may keep failing in a row during `wait_until_ready` (just after create).
    inspect_grace: float = 60.0

    @abstractmethod
    def create_secret(self, name: str, value: str) -> None:
        """Store a secret (the Hugging Face token) under `name` for `serve` to use."""

    @abstractmethod
    def secret_exists(self, name: str) -> bool:
        """True when a secret called `name` is stored."""

    def serve(
        self,
        name: str,
        model: str = MODEL_ID,
        hf_token_secret: str | None = None,
    ) -> Endpoint:
        """Start serving `model` as endpoint `name` (returns before it is ready: `wait_until_ready`).

        INFERENCE_URL, when set, wins: its endpoint is returned and nothing is started.
        """
        overridden = store.endpoint_from_env(name)
        if overridden:
            print(
                f"{INFERENCE_URL_ENV} is set: using that endpoint, not serving {name!r} "
                f"(unset it to {self.serve_verb})."
            )
            return overridden
        store.check_name(name)
        return self._serve(name, model, hf_token_secret)

    @abstractmethod
    def _serve(self, name: str, model: str, hf_token_secret: str | None) -> Endpoint:
        """Start serving a checked `name` (the target's own work behind `serve`)."""

    @abstractmethod
    def inspect(self, name: str) -> EndpointInfo:
        """The endpoint's status and URL now."""

    @abstractmethod
    def logs(self, name: str) -> str:
        """The endpoint's log text."""

    @abstractmethod
    def stop(self, name: str) -> None:
        """Stop the endpoint."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the endpoint and forget it."""

    def scale_to_zero(self, name: str) -> None:
        """Keep the endpoint but stop paying while it is idle (a target without scaling stops it)."""
        self.stop(name)

    def endpoint(self, name: str) -> Endpoint:
        """A previously served endpoint, found in the saved state (or INFERENCE_URL/INFERENCE_API_KEY)."""
        return store.find_endpoint(name, self.target)

    def wait_until_ready(self, name: str, timeout: float = 1800.0) -> Endpoint:
        """Wait until `name` is running, confirm it with one small generation, return its `Endpoint`.

        Shows a progress line with the status and the elapsed time. A failed or stopped endpoint
        raises `EndpointFailed` with its last log lines; `timeout` raises `DeploymentTimeout`.
        """
        started = time.monotonic()
        overridden = store.endpoint_from_env(name)
        # A status line, not a bar (the length of the wait is unknown): plain tqdm on stdout, since
        # the notebook widget draws a squashed empty bar when there is no total.
        status_line = tqdm(desc=f"{name}: checking", bar_format="{desc} [{elapsed}]", file=sys.stdout)
        with status_line as bar:

            def show(text: str) -> None:
                bar.set_description_str(f"{name}: {text}")

            if overridden:
                print(f"{INFERENCE_URL_ENV} is set: confirming that endpoint instead of {name!r}.")
                endpoint = overridden
            else:
                info = wait_for_running(
                    lambda: self.inspect(name),
                    lambda: self.logs(name),
                    timeout=timeout,
                    interval=self.poll_interval,
                    show=show,
                    grace=self.inspect_grace,
                )
                endpoint = self._ready_endpoint(name, info)
            confirm_endpoint(endpoint, timeout=self.confirm_timeout, interval=self.poll_interval, show=show)
            show("ready")
        print(f"{name} is ready after {format_elapsed(time.monotonic() - started)}: {endpoint.url}")
        return endpoint

    def _ready_endpoint(self, name: str, info: EndpointInfo) -> Endpoint:
        """The endpoint once `info` says it is running (targets save the URL here)."""
        return store.find_endpoint(name, self.target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r})"
