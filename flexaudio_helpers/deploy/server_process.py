"""The local endpoint as an operating-system process: a free port, its command line, starting it
detached, /health, ending it, and the registry of running servers.

`LocalDeployment` starts and stops servers through here (the tests' and benchmarks' child servers
reuse these pieces: tests/server_process.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from ..errors import DeploymentError
from ..params import TASK
from ..protocol import HEALTH_ROUTE, LOCAL_SERVER_KEY_ENV
from . import store

SERVER_MODULE = "flexaudio_helpers.serving"
HOST = "127.0.0.1"
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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def server_url(port: int) -> str:
    """The base URL of a server listening on `port` here."""
    return f"http://{HOST}:{port}"


def server_command(model: str, port: int, *extra: str) -> list[str]:
    """``python -m flexaudio_helpers.serving --task text-to-audio --model M --port N [extra...]``."""
    return [
        sys.executable,
        "-m",
        SERVER_MODULE,
        "--task",
        TASK,
        "--model",
        model,
        "--port",
        str(port),
        *extra,
    ]


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


# -- health ---------------------------------------------------------------------------------


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """True when the server at `url` answers /health with 200."""
    try:
        return httpx.get(url + HEALTH_ROUTE, timeout=timeout).status_code == 200
    except httpx.TransportError:
        return False


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


# -- the registry of running servers (records in the store, mode 0600) -----------------------


def recorded(name: str) -> dict[str, Any] | None:
    """The saved record of the local server `name` (url, key, pid, start time, port, log), if any."""
    return store.load_record(store.LOCAL, name)


def record(name: str, *, pid: int, **facts: Any) -> dict[str, Any]:
    """Save server `name` as running with `pid` (its start time is saved too, against pid reuse)."""
    import psutil

    return store.save_record(
        store.LOCAL, name, pid=pid, create_time=psutil.Process(pid).create_time(), **facts
    )


def remove_server_record(name: str) -> bool:
    """Remove the record of server `name`; True when there was one."""
    return store.remove_record(store.LOCAL, name)


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
