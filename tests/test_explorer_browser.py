"""The explorer notebook in a real JupyterLab, in headless Chromium driven by Playwright.

JupyterLab runs on a free loopback port with a random token, on a temporary copy of notebooks/,
with the Makefile's notebook environment (local target, offline model, a temporary state folder).
The test runs all cells, clicks Generate in the page, waits for the new clip's <audio> element and
spectrogram image, and saves a screenshot to test-artifacts/explorer.png.

Chromium is Debian's (`apt-get install chromium`); Playwright's own browser download cannot work
here. Without /usr/bin/chromium the test fails when CI is set (`.ci/run` installs it) and skips
otherwise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "05_parameter_explorer.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOT = ROOT / "test-artifacts" / "explorer.png"
ENDPOINT_NAME = "stable-audio-open"
ALL_CELLS_RAN = """() => {
    const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'));
    return prompts.length > 0 && prompts.every(prompt => /^\\[\\d+\\]:$/.test(prompt.innerText.trim()));
}"""


def missing(why: str) -> None:
    """Fail in CI (where .ci/run installs what is needed), skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so this is a failure, not a skip)")
    pytest.skip(why)


def stop_group(process: subprocess.Popen) -> None:
    """End the server and its kernels (its children, in its process group)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def answer_questions(page) -> None:
    """Answer what a fresh JupyterLab (no saved workspace) asks: "Select Kernel" (take the proposed
    one, the notebook's own python3) and whether to fetch Jupyter news (no)."""
    news = page.locator(".jp-toast-button >> text=No")
    if news.count():
        news.first.click()
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and "Select Kernel" in dialog.inner_text():
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()


def wait_for(page, selector: str, timeout: float) -> None:
    """Wait until `selector` matches, answering JupyterLab's questions meanwhile."""
    deadline = time.monotonic() + timeout
    while not page.locator(selector).count():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing matched {selector!r} after {timeout:.0f} s")
        answer_questions(page)
        time.sleep(0.5)


def run_all_cells(page, timeout: float = 120) -> None:
    """Run every cell once the kernel is idle and no dialog is open.

    On a fresh workspace JupyterLab may ask "Select Kernel" even as the kernel starts, and a
    command given meanwhile is dropped: run again until the first code cell is queued or done.
    """
    deadline = time.monotonic() + timeout
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    while time.monotonic() < deadline:
        wait_for(page, ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout)
        time.sleep(2)  # let a late "Select Kernel" dialog appear
        answer_questions(page)
        if page.locator(".jp-Dialog").count():
            continue
        # Not awaited: the command's promise only settles when every cell has run.
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        for _ in range(20):
            time.sleep(0.5)
            if first_prompt.inner_text().strip() not in ("[ ]:", ""):
                return
            answer_questions(page)
    pytest.fail("JupyterLab did not run the notebook's cells")


@pytest.fixture
def browser_tools():
    """Chromium and Playwright, checked before JupyterLab is started."""
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("playwright is not installed: pip install -e '.[test]'")


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """JupyterLab serving a copy of notebooks/; yields (base URL, token); stops it and the endpoint."""
    root = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns("explorer-sessions", "clips"))
    state = tmp_path / "state"
    notebook_env = {
        "FLEXAUDIO_TARGET": "local",
        "FLEXAUDIO_MODEL": "offline",
        "FLEXAUDIO_STATE_DIR": str(state),
        "FLEXAUDIO_API_KEY": "fake-local-api-key-4f1c0de9",
        "INFERENCE_URL": "",
        "INFERENCE_API_KEY": "",
    }
    for name, value in notebook_env.items():
        monkeypatch.setenv(name, value)  # the same state folder here, to stop the endpoint afterwards
    env = {
        **os.environ,
        **notebook_env,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    port, token = free_port(), secrets.token_hex(16)
    command = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run commands
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base}/api/status", headers={"Authorization": f"token {token}"}).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield base, token
    finally:
        stop_group(server)
        from flexaudio_helpers.deploy import LocalDeployment

        LocalDeployment(echo=False).stop(ENDPOINT_NAME)  # the endpoint the notebook served


def test_explorer_in_jupyterlab(browser_tools, lab):
    base, token = lab
    problems: list[str] = []
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: (
                    problems.append(f"console: {message.text}") if message.type == "error" else None
                ),
            )
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            page.wait_for_function(
                "() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=120_000
            )
            run_all_cells(page)

            # Every code cell numbered (none queued, "[*]"), and the last one listed the exported files.
            page.wait_for_function(ALL_CELLS_RAN, timeout=300_000, polling=500)
            assert "manifest.jsonl" in page.locator(".jp-CodeCell .jp-OutputArea").last.inner_text()
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            assert "Traceback" not in " ".join(errors.all_inner_texts())
            explorer = page.locator(".flexaudio-explorer")
            assert explorer.count() == 1, "the explorer widget did not render"
            banner = page.locator(".flexaudio-offline-banner")
            assert "noise, not music" in banner.inner_text()

            # Click Generate in the page, as a person would, and time it until the new clip shows.
            button = page.locator("button.flexaudio-generate")
            button.scroll_into_view_if_needed()
            clips_before = page.locator(".flexaudio-status").inner_text()
            assert clips_before.startswith("Clip #1"), clips_before
            started = time.monotonic()
            button.click()
            page.wait_for_function("() => document.querySelector('button.flexaudio-generate').disabled")
            page.wait_for_function(
                """() => {
                    const status = document.querySelector('.flexaudio-status');
                    const audio = document.querySelector('.flexaudio-player audio source');
                    const image = document.querySelector('.flexaudio-spectrogram');
                    return status && status.innerText.startsWith('Clip #4')
                        && audio && audio.src.startsWith('data:audio/ogg')
                        && image && image.complete && image.naturalWidth > 0;
                }""",
                timeout=120_000,
                polling=100,
            )
            click_to_audio = time.monotonic() - started
            print(f"browser click to audio: {click_to_audio:.2f} s")
            assert not button.is_disabled()
            assert page.locator(".flexaudio-player audio").count() == 1
            assert page.locator(".flexaudio-details >> text=seed used").count() == 1

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=str(SCREENSHOT))

            # The A/B view: two players side by side, then one figure on a shared colour scale.
            explorer.locator(".lm-TabBar-tab >> text=Compare").click()
            explorer.locator("button >> text=Compare A/B").click()
            page.wait_for_function(
                """() => document.querySelectorAll('.flexaudio-compare audio').length === 2
                    && Array.from(document.querySelectorAll('.flexaudio-compare img'))
                        .some(image => image.complete && image.naturalWidth > 0)""",
                timeout=60_000,
            )
            explorer.screenshot(path=str(SCREENSHOT.with_name("explorer-compare.png")))
            compared = page.locator(".flexaudio-compare").inner_text()
            assert "A: clip #3" in compared and "B: clip #4" in compared, compared
        except Exception:
            page.screenshot(path=str(SCREENSHOT.with_name("explorer-failure.png")))
            raise
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
    # Widget problems show up as console errors; fail on ours, not on JupyterLab's own noise.
    ours = [problem for problem in problems if "widget" in problem.lower() or "flexaudio" in problem.lower()]
    assert not ours, ours
