"""Shared fixtures: a real local endpoint on 127.0.0.1 serving the offline model."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

EXAMPLE_1 = {
    "inputs": "Relaxing piano music with soft ambient sounds, calm and peaceful",
    "parameters": {"audio_end_in_s": 10.0, "num_inference_steps": 200, "guidance_scale": 7.0, "seed": 42},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    api_key: str
    process: subprocess.Popen
    log_path: Path

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.api_key}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    tmp: Path, *extra: str, api_key: str | None = None, timeout: float = 120, preexec_fn=None
) -> RunningServer:
    """Start `python -m flexaudio_helpers.serving --model offline` and wait for /health.

    `preexec_fn` runs in the child before the server starts (e.g. to set its open-file limit).
    """
    port = free_port()
    api_key = api_key or f"test-key-{secrets.token_hex(8)}"
    env = {**os.environ, "FLEXAUDIO_API_KEY": api_key, "FLEXAUDIO_STATE_DIR": str(tmp / "state")}
    log_path = tmp / f"server-{port}.log"
    command = [sys.executable, "-m", "flexaudio_helpers.serving", "--model", "offline", "--port", str(port)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, *extra], env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn
        )
    server = RunningServer(f"http://127.0.0.1:{port}", api_key, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"server not ready after {timeout} s:\n{server.log()}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def offline_server(tmp_path_factory) -> RunningServer:
    """One offline-model endpoint for the whole test session."""
    server = start_server(tmp_path_factory.mktemp("offline-server"))
    yield server
    stop_server(server)
