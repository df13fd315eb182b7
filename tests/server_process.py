"""Offline-model servers as children of the test (or benchmark) process: started, waited for on
/health, and stopped, so a test can kill them, read their exit and limit them.

Built from the pieces `LocalDeployment` starts its detached servers with
(`flexaudio_helpers.deploy.server_process`). Benchmarks import this module too (bench/ puts
tests/ on sys.path).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from flexaudio_helpers.deploy.server_process import (
    STOP_GRACE_SECONDS,
    free_port,
    is_healthy,
    server_command,
    server_environment,
    server_url,
    terminate,
)


class ServerNotReady(RuntimeError):
    """A child server exited, or did not answer /health in time (the message has its log)."""


def start_offline_child(
    folder: Path,
    api_key: str,
    *extra: str,
    timeout: float = 180,
    preexec_fn: Callable[[], Any] | None = None,
) -> tuple[subprocess.Popen, str, Path]:
    """The offline-model server as a child of this process, once /health answers.

    Its state folder and log file go in `folder`; `extra` are more server arguments;
    `preexec_fn` runs in the child before the server starts (e.g. to set its open-file limit).
    Returns (process, url, log path); `ServerNotReady` (with the log) if it does not come up.
    """
    port = free_port()
    log_path = folder / f"server-{port}.log"
    environment = server_environment(api_key, FLEXAUDIO_STATE_DIR=str(folder / "state"))
    url = server_url(port)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            server_command("offline", port, *extra),
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
    deadline = time.monotonic() + timeout
    while not is_healthy(url, timeout=1.0):
        exited = process.poll() is not None
        if exited or time.monotonic() > deadline:
            stop_child(process)
            why = "exited early" if exited else f"was not ready after {timeout} s"
            raise ServerNotReady(f"the server {why}:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.2)
    return process, url, log_path


def stop_child(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """End a child server (SIGTERM, then SIGKILL) and collect it."""
    if process.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess):  # it ended between poll() and here
            terminate(psutil.Process(process.pid), grace)
    process.wait()
