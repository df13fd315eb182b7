"""Shared fixtures (a real local endpoint on 127.0.0.1 serving the offline model) and the two test tiers.

Tiers, as diffusers' `@slow`: `make test` runs the fast tier; `make test-all` sets RUN_SLOW=1 and adds
the tests marked `@pytest.mark.slow` (whole tours, the browser, load, servers of their own) and runs
Hypothesis at full size (`examples(n)` gives n there and a twentieth of it, at least 10, here).

Servers start and stop through `tests/server_process.py`, from the pieces `LocalDeployment` uses,
but as children of the test process (tests kill them, read their exit and limit them).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_process import start_offline_child, stop_child

RUN_SLOW = os.environ.get("RUN_SLOW") == "1"


def examples(full: int) -> int:
    """Hypothesis examples: `full` under `make test-all`, else a twentieth of it (at least 10)."""
    return full if RUN_SLOW else max(10, full // 20)


def pytest_collection_modifyitems(config, items):
    if RUN_SLOW:
        # Files with slow tests first: the workers take files in this order, so the whole tours
        # start at once and the short files fill in around them, rather than a tour running alone
        # at the end.
        items.sort(key=lambda item: "slow" not in item.keywords)
        return
    skip = pytest.mark.skip(reason="slow tier: run by `make test-all` (RUN_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


EXAMPLE_1 = {
    "inputs": "Relaxing piano music with soft ambient sounds, calm and peaceful",
    "parameters": {"audio_end_in_s": 10.0, "num_inference_steps": 200, "guidance_scale": 7.0, "seed": 42},
}


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
    """Start `python -m flexaudio_helpers.serving --model offline` as a child and wait for /health.

    `preexec_fn` runs in the child before the server starts (e.g. to set its open-file limit).
    """
    api_key = api_key or f"test-key-{secrets.token_hex(8)}"
    process, url, log_path = start_offline_child(tmp, api_key, *extra, timeout=timeout, preexec_fn=preexec_fn)
    return RunningServer(url, api_key, process, log_path)


def stop_server(server: RunningServer) -> None:
    """SIGTERM, then SIGKILL after 15 s; the process is collected."""
    stop_child(server.process)


@pytest.fixture(scope="session")
def offline_server(tmp_path_factory) -> RunningServer:
    """One offline-model endpoint for the whole test session."""
    server = start_server(tmp_path_factory.mktemp("offline-server"))
    yield server
    stop_server(server)


@pytest.fixture(autouse=True)
def no_project_dotenv(monkeypatch, tmp_path_factory):
    """Settings never read a .env the developer keeps in the project root (the tutorial puts one
    there): each test sees only the environment and .env files it writes itself."""
    from flexaudio_helpers import settings

    monkeypatch.setattr(settings, "PROJECT_ROOT", tmp_path_factory.getbasetemp() / "no-project")
