"""A real JupyterLab server for tests, started as `make lab` starts it, on a free loopback port.

The learner-journey test and the browser test both use it. Each server gets its own runtime,
workspace and settings folders, so nothing is shared with the developer's own JupyterLab, and
JupyterLab's news and update checks are off (`make lab` turns them off the same way), so no toast
appears in the page.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from flexaudio_helpers.deploy.server_process import free_port

# The overrides `make lab` installs (see the Makefile): no news question and no update check, so no
# toast appears over the notebook, and JupyterLab asks no website for anything.
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}
}


@dataclass
class LabServer:
    base: str
    token: str
    process: subprocess.Popen
    log_path: Path
    runtime_dir: Path

    def api(self, method: str, route: str, **kwargs) -> httpx.Response:
        """Call the server's REST API with the token."""
        headers = {"Authorization": f"token {self.token}"}
        response = httpx.request(method, f"{self.base}{route}", headers=headers, timeout=60, **kwargs)
        response.raise_for_status()
        return response

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_lab(
    root: Path, work: Path, env: dict[str, str], *, overrides: dict | None = None, timeout: float = 120
) -> LabServer:
    """Start `jupyter lab` on `root` with exactly the environment `env`; wait until it answers.

    `overrides` adds JupyterLab settings to `LAB_OVERRIDES` (plugin id -> settings).
    """
    port, token = free_port(), secrets.token_hex(16)
    settings = work / "lab-settings"
    (settings / "overrides.d").mkdir(parents=True)
    (settings / "overrides.d" / "flexaudio.json").write_text(
        json.dumps({**LAB_OVERRIDES, **(overrides or {})})
    )
    env = {
        **env,
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"),
    }
    command = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.app_settings_dir={settings}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run commands
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root
    log_path = work / "jupyterlab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, process, log_path, work / "runtime")
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if server.api("GET", "/api/status").is_success:
                return server
        if time.monotonic() > deadline:
            stop_lab(server)
            raise RuntimeError(f"JupyterLab did not start in {timeout:.0f} s:\n{server.log()}")
        time.sleep(0.5)


def stop_lab(server: LabServer) -> None:
    """End the server and its kernels (its children, in its process group)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, sig)
        try:
            server.process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
