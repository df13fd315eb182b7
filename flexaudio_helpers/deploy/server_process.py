"""The local endpoint as an operating-system process: a free port, its command line, starting it
(detached or as a child), waiting for /health, ending it, and the registry of running servers.

`LocalDeployment`, the tests' fixtures and the benchmarks all start and stop servers through here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

from ..errors import DeploymentError
from ..protocol import HEALTH_ROUTE, LOCAL_SERVER_KEY_ENV
from . import store

SERVER_MODULE = "flexaudio_helpers.serving"
HOST = "127.0.0.1"
#: The store's target name under which running local servers are recorded.
REGISTRY_TARGET = "local"
STOP_GRACE_SECONDS = 15.0
LAUNCH_TIMEOUT_SECONDS = 60.0
# Run as `python -c LAUNCHER server-command...`: starts the server in its own session, with its
# output on the launcher's stderr (the log file), prints its pid and exits. The server is then
# nobody's child here: a kernel that started it and stays alive can never hold it as a zombie.
LAUNCHER = (
    "import subprocess, sys\n"
    "server = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=2, stderr=2,"
    " start_new_session=True)\n"
    "print(server.pid)"
)


class ServerNotReady(DeploymentError, RuntimeError):
    """A server started here exited, or did not answer /health in time (the message has its log)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def server_url(port: int) -> str:
    """The base URL of a server listening on `port` here."""
    return f"http://{HOST}:{port}"


def server_command(
    model: str, port: int, *extra: str, task: str | None = None, python: str = ""
) -> list[str]:
    """``python -m flexaudio_helpers.serving [--task T] --model M --port N [extra...]``."""
    command = [python or sys.executable, "-m", SERVER_MODULE]
    if task:
        command += ["--task", task]
    return [*command, "--model", model, "--port", str(port), *extra]


def server_environment(api_key: str, **extra: str) -> dict[str, str]:
    """This process's environment plus the server's API key (never put on its command line)."""
    return {**os.environ, LOCAL_SERVER_KEY_ENV: api_key, **extra}


# -- starting -------------------------------------------------------------------------------


def launch_detached(command: list[str], environment: dict[str, str], log: IO[bytes], log_path: Path) -> int:
    """Start `command` through `LAUNCHER`, its output in `log`; return the server's pid.

    The launcher exits at once, so the server outlives whichever kernel started it.
    """
    launcher = subprocess.run(
        [command[0], "-c", LAUNCHER, *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        env=environment,
        timeout=LAUNCH_TIMEOUT_SECONDS,
        check=False,
    )
    pid = launcher.stdout.decode(errors="replace").strip()
    if launcher.returncode != 0 or not pid.isdigit():
        raise DeploymentError(
            f"could not start the local server (launcher exit {launcher.returncode}); see {log_path}"
        )
    return int(pid)


def start_child(
    command: list[str],
    environment: dict[str, str],
    log_path: Path,
    *,
    preexec_fn: Callable[[], Any] | None = None,
) -> subprocess.Popen:
    """Start `command` as a child of this process, stdout and stderr in `log_path` (tests, benchmarks).

    `preexec_fn` runs in the child before the server starts (e.g. to set its open-file limit).
    """
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn
        )


# -- health ---------------------------------------------------------------------------------


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """True when the server at `url` answers /health with 200."""
    try:
        return httpx.get(url + HEALTH_ROUTE, timeout=timeout).status_code == 200
    except httpx.TransportError:
        return False


def wait_until_healthy(
    url: str, *, timeout: float, exited: Callable[[], bool], log: Callable[[], str], interval: float = 0.2
) -> None:
    """Return once `url` answers /health; `ServerNotReady` (with the log) when `exited()` or at `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited():
            raise ServerNotReady(f"the server exited early:\n{log()}")
        if is_healthy(url, timeout=1.0):
            return
        time.sleep(interval)
    raise ServerNotReady(f"the server was not ready after {timeout} s:\n{log()}")


def start_healthy_child(
    command: list[str],
    environment: dict[str, str],
    log_path: Path,
    url: str,
    *,
    timeout: float,
    preexec_fn: Callable[[], Any] | None = None,
) -> subprocess.Popen:
    """`start_child`, then wait until `url` answers /health; on failure stop it, `ServerNotReady`."""
    process = start_child(command, environment, log_path, preexec_fn=preexec_fn)
    try:
        wait_until_healthy(
            url,
            timeout=timeout,
            exited=lambda: process.poll() is not None,
            log=lambda: log_path.read_text(errors="replace"),
        )
    except ServerNotReady:
        stop_child(process)
        raise
    return process


def start_offline_child(
    folder: Path,
    api_key: str,
    *extra: str,
    timeout: float = 180,
    preexec_fn: Callable[[], Any] | None = None,
) -> tuple[subprocess.Popen, str, Path]:
    """The offline-model server as a child of this process, for tests and benchmarks.

    Its state folder and log file go in `folder`; `extra` are more server arguments. Returns
    (process, url, log path) once /health answers; `ServerNotReady` (with the log) if it does not.
    """
    port = free_port()
    log_path = folder / f"server-{port}.log"
    environment = server_environment(api_key, FLEXAUDIO_STATE_DIR=str(folder / "state"))
    url = server_url(port)
    command = server_command("offline", port, *extra)
    process = start_healthy_child(command, environment, log_path, url, timeout=timeout, preexec_fn=preexec_fn)
    return process, url, log_path


# -- stopping -------------------------------------------------------------------------------


def has_exited(process: Any, timeout: float) -> bool:
    """True once `process` is gone or a zombie (exited, not yet collected), within `timeout` seconds."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def terminate(process: Any, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL after `grace` s, to a `psutil.Process`. An exited server counts as stopped
    even while it waits, as a zombie, for whichever process is its parent to collect it."""
    import psutil

    for send in (process.terminate, process.kill):
        try:
            send()
        except psutil.NoSuchProcess:
            return
        except psutil.Error as exc:
            raise DeploymentError(f"could not stop the local server (pid {process.pid}): {exc}") from None
        if has_exited(process, grace):
            return
    raise DeploymentError(
        f"the local server (pid {process.pid}) did not stop within {2 * grace:.0f} s "
        f"of SIGTERM and SIGKILL; end it yourself (kill -9 {process.pid}) and stop again"
    )


def stop_child(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """End a server started with `start_child` (SIGTERM, then SIGKILL) and collect it."""
    import psutil

    if process.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess):  # it ended between poll() and here
            terminate(psutil.Process(process.pid), grace)
    process.wait()


# -- the registry of running servers (records in the store, mode 0600) -----------------------


def recorded(name: str) -> dict[str, Any] | None:
    """The saved record of the local server `name` (url, key, pid, start time, port, log), if any."""
    return store.load_record(REGISTRY_TARGET, name)


def record(name: str, *, pid: int, **facts: Any) -> dict[str, Any]:
    """Save server `name` as running with `pid` (its start time is saved too, against pid reuse)."""
    import psutil

    return store.save_record(
        REGISTRY_TARGET, name, pid=pid, create_time=psutil.Process(pid).create_time(), **facts
    )


def forget(name: str) -> bool:
    """Remove the record of server `name`; True when there was one."""
    return store.remove_record(REGISTRY_TARGET, name)


def running(record: dict[str, Any] | None):
    """The live server process of a record, or None (gone, a zombie, or the pid now reused)."""
    import psutil

    if not record or not record.get("pid"):
        return None
    try:
        process = psutil.Process(int(record["pid"]))
        if abs(process.create_time() - float(record.get("create_time", 0))) > 1.0:
            return None  # the pid belongs to another, newer process
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return process


def end_recorded(record: dict[str, Any] | None) -> bool:
    """Terminate the record's server if it still runs; True when there was one to end."""
    process = running(record)
    if process is None:
        return False
    terminate(process)
    return True
