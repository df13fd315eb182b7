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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_process import start_offline_child, stop_child

RUN_SLOW = os.environ.get("RUN_SLOW") == "1"


def examples(full: int) -> int:
    """Hypothesis examples: `full` under `make test-all`, else a twentieth of it (at least 10)."""
    return full if RUN_SLOW else max(10, full // 20)


ROOT = Path(__file__).resolve().parents[1]
# `make test` runs the notebooks under nbmake on copies in test-artifacts/notebooks, in the same
# session as the tests (see `pytest_xdist_make_scheduler`), with this environment: this machine and
# the offline model, a state folder of their own, and known fake secrets that
# tests/test_notebook_outputs.py then looks for in every output and file.
NOTEBOOK_COPIES = ROOT / "test-artifacts" / "notebooks"
NOTEBOOK_ENVIRONMENT = {
    "FLEXAUDIO_TARGET": "local",
    "FLEXAUDIO_MODEL": "offline",
    "FLEXAUDIO_STATE_DIR": str(ROOT / "test-artifacts" / "state"),
    "FLEXAUDIO_API_KEY": "fake-local-api-key-4f1c0de9",
    "HF_TOKEN": "hf_fakeTokenForTheScan0123456789",
    "INFERENCE_URL": "",
    "INFERENCE_API_KEY": "",
}
NOTEBOOK_SCAN = "test_notebook_outputs.py"


def _is_notebook(item) -> bool:
    return item.path.suffix == ".ipynb"


def _slow_as_a_whole(item) -> bool:
    marks = getattr(getattr(item, "module", None), "pytestmark", [])
    return any(mark.name == "slow" for mark in (marks if isinstance(marks, list) else [marks]))


def _in_notebook_environment(run):
    """`run` with NOTEBOOK_ENVIRONMENT set: the kernel, and any server it starts, inherit it."""

    def run_in_environment() -> None:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in NOTEBOOK_ENVIRONMENT.items():
                patch.setenv(name, value)
            run()

    return run_in_environment


def pytest_collection_modifyitems(config, items):
    notebooks_ran = any(_is_notebook(item) for item in items)
    slow_skip = pytest.mark.skip(reason="slow tier: run by `make test-all` (RUN_SLOW=1)")
    scan_skip = pytest.mark.skip(reason="scans the notebooks run in the same session: `make test`")
    for item in items:
        if _is_notebook(item):
            item.runtest = _in_notebook_environment(item.runtest)
        elif item.path.name == NOTEBOOK_SCAN and not notebooks_ran:
            item.add_marker(scan_skip)
        elif "slow" in item.keywords and not RUN_SLOW:
            item.add_marker(slow_skip)
    # The order in which the workers take files (the Makefile passes --no-loadscope-reorder): under
    # RUN_SLOW the files slow as a whole (tours, load, faults) first, so the longest start at once;
    # then the notebooks and their scan (one worker, in order, about 2 minutes); then the rest, the
    # most tests first, as xdist would order them.
    tests_in_file = Counter(item.path for item in items)

    def rank(item) -> tuple:
        if RUN_SLOW and _slow_as_a_whole(item):
            return (0, 0)
        if _is_notebook(item):
            return (1, 0)
        if item.path.name == NOTEBOOK_SCAN:
            return (2, 0)
        return (3, -tests_in_file[item.path])

    items.sort(key=rank)


def pytest_xdist_make_scheduler(config, log):
    """Under `--dist loadfile`, the notebooks and their scan are one unit of work: they run one
    after another in one worker (02 serves the endpoint that 03 to 07 use, 08 stops it), while the
    other worker runs test files."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class NotebooksInOneWorker(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path.endswith((".ipynb", NOTEBOOK_SCAN)):
                return "notebooks"
            return super()._split_scope(nodeid)

    return NotebooksInOneWorker(config, log)


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
