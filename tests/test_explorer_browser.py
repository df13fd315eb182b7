"""The whole tour in a real JupyterLab, in headless Chromium driven by Playwright, as a person runs it.

One JupyterLab serves a temporary copy of notebooks/ with the Makefile's notebook environment (local
target, offline model, a temporary state folder). In one page, the test opens 01 to 08 in turn, runs
all cells of each (pressing Enter at 01's hidden token box, as a person without a token does), leaves
every notebook open with its kernel running, and saves a screenshot of each to
test-artifacts/screenshots/. In 05 it also clicks Generate and Compare in the page, then, in History,
moves the Variations and Noise level sliders with the keyboard and clicks Vary and Start from this take.

JupyterLab's news and update checks are off (the same settings `make lab` installs), so no toast can
cover what the test clicks. Chromium is Debian's (`apt-get install chromium`); Playwright's own browser
download cannot work here. Without /usr/bin/chromium the test fails when CI is set (`.ci/run`
installs it) and skips otherwise.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from lab_server import start_lab, stop_lab

pytestmark = pytest.mark.slow  # a real JupyterLab in Chromium

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(path.name for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPLORER_NOTEBOOK = "05_parameter_explorer.ipynb"
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
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
ENDPOINT_NAME = "stable-audio-open"
# The notebook in front (JupyterLab hides the others with lm-mod-hidden).
CURRENT = ".jp-NotebookPanel:not(.lm-mod-hidden)"
ALL_CELLS_RAN = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    const prompts = panel ? Array.from(panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')) : [];
    return prompts.length > 0 && prompts.every(prompt => /^\\[\\d+\\]:$/.test(prompt.innerText.trim()));
}"""
# Scroll the panel's scrolling part (whatever JupyterLab calls it) to the top; return its full height.
SCROLL_TO_TOP = """panel => {
    let scroller = null;
    for (const element of panel.querySelectorAll('*')) {
        if (element.scrollHeight > element.clientHeight + 10
            && (!scroller || element.scrollHeight > scroller.scrollHeight)) {
            scroller = element;
        }
    }
    if (!scroller) { return panel.scrollHeight; }
    scroller.scrollTop = 0;
    return scroller.scrollHeight;
}"""
# Every cell attached to the page, so a screenshot shows the whole notebook.
TEST_OVERRIDES = {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}


def missing(why: str) -> None:
    """Fail in CI (where .ci/run installs what is needed), skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so this is a failure, not a skip)")
    pytest.skip(why)


def answer_questions(page) -> None:
    """Answer what a fresh JupyterLab or a notebook asks: "Select Kernel" (take the proposed one, the
    notebook's own python3) and the hidden token box (Enter, as a person without a token does)."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and "Select Kernel" in dialog.inner_text():
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    token_box = page.locator(f"{CURRENT} .jp-Stdin-input")
    if token_box.count():
        token_box.first.press("Enter")


def wait_until(page, predicate, timeout: float, what: str) -> None:
    """Poll `predicate()` every half second, answering questions meanwhile."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f} s")
        answer_questions(page)
        time.sleep(0.5)


def open_and_run(page, name: str, timeout: float = 600) -> None:
    """Open `name` in the running JupyterLab, as a double click in the file browser does, and run
    all its cells once its kernel is idle; return when every code cell has run."""
    # Not awaited or returned: the command's result (the widget) cannot cross into Python.
    page.evaluate(f"() => {{ window.jupyterapp.commands.execute('docmanager:open', {{path: '{name}'}}); }}")
    in_front = f"() => window.jupyterapp.shell.currentWidget?.context?.path === '{name}'"
    wait_until(
        page,
        lambda: (
            page.evaluate(in_front)
            and page.locator(f"{CURRENT} .jp-Notebook-ExecutionIndicator[data-status='idle']").count()
        ),
        120,
        f"{name} did not open with an idle kernel",
    )
    # A click in the notebook, as a person makes: run-all acts on the notebook that has the focus.
    page.locator(f"{CURRENT} .jp-Cell").first.click()
    first_prompt = page.locator(f"{CURRENT} .jp-CodeCell .jp-InputPrompt").first
    deadline = time.monotonic() + 120
    # A command given while a "Select Kernel" dialog is up is dropped: run again until cells start.
    while first_prompt.inner_text().strip() in ("[ ]:", ""):
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not run the cells of {name}")
        answer_questions(page)
        if not page.locator(".jp-Dialog").count():
            # Not awaited: the command's promise only settles when every cell has run.
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        for _ in range(10):
            time.sleep(0.5)
            if first_prompt.inner_text().strip() not in ("[ ]:", ""):
                break
    wait_until(page, lambda: page.evaluate(ALL_CELLS_RAN), timeout, f"the cells of {name} did not all run")


def check_outputs(page, name: str) -> None:
    """No traceback and nothing on stderr (JupyterLab's pink boxes) in the notebook in front.

    JupyterLab renders a traceback with the stderr renderer too, so one selector finds both.
    """
    errors = page.locator(f"{CURRENT} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    texts = errors.all_inner_texts()
    assert not texts, f"{name}: stderr output: {texts}"


def screenshot(page, name: str) -> Path:
    """The notebook in front, all its cells, as a PNG under test-artifacts/screenshots/."""
    path = SCREENSHOTS / f"{Path(name).stem}.png"
    # The notebook scrolls inside its panel: make the window as tall as the whole notebook, and
    # scroll that panel back to the top.
    panel = page.locator(CURRENT)
    height = panel.evaluate(SCROLL_TO_TOP)
    page.set_viewport_size({"width": 1400, "height": min(max(1200, height + 250), 16000)})
    time.sleep(1)  # let the page lay out at the new size
    panel.evaluate(SCROLL_TO_TOP)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1400})
    return path


def exercise_explorer(page) -> None:
    """Click Generate and Compare in the explorer, as a person would."""
    explorer = page.locator(f"{CURRENT} .flexaudio-explorer")
    assert explorer.count() == 1, "the explorer widget did not render"
    assert (
        "noise from random weights, not music"
        in page.locator(f"{CURRENT} .flexaudio-offline-banner").inner_text()
    )
    assert "manifest.jsonl" in page.locator(f"{CURRENT} .jp-CodeCell .jp-OutputArea").last.inner_text()
    button = explorer.locator("button.flexaudio-generate")
    button.scroll_into_view_if_needed()
    status = explorer.locator(".flexaudio-status")
    assert status.inner_text().startswith("Clip #1"), status.inner_text()
    started = time.monotonic()
    button.click()
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const status = panel.querySelector('.flexaudio-status');
            const audio = panel.querySelector('.flexaudio-player audio source');
            const image = panel.querySelector('.flexaudio-spectrogram');
            return status && status.innerText.startsWith('Clip #4')
                && audio && audio.src.startsWith('data:audio/mpeg')
                && image && image.complete && image.naturalWidth > 0;
        }""",
        timeout=180_000,
        polling=250,
    )
    print(f"browser click to audio: {time.monotonic() - started:.2f} s")
    assert not button.is_disabled()
    assert explorer.locator(".flexaudio-player audio").count() == 1
    assert explorer.locator(".flexaudio-details >> text=seed used").count() == 1
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=str(SCREENSHOTS / "explorer.png"))

    # The A/B view: two players side by side, then one figure on a shared colour scale.
    explorer.locator(".lm-TabBar-tab >> text=Compare").click()
    explorer.locator("button >> text=Compare A/B").click()
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            return panel.querySelectorAll('.flexaudio-compare audio').length === 2
                && Array.from(panel.querySelectorAll('.flexaudio-compare img'))
                    .some(image => image.complete && image.naturalWidth > 0);
        }""",
        timeout=60_000,
    )
    explorer.screenshot(path=str(SCREENSHOTS / "explorer-compare.png"))
    compared = explorer.locator(".flexaudio-compare").inner_text()
    assert "A: clip #3" in compared and "B: clip #4" in compared, compared
    vary_and_start_from(page, explorer)
    extend_loop_and_repaint(page, explorer)


def vary_and_start_from(page, explorer) -> None:
    """In History (clip #4 selected): two variations, then audio-to-audio from the newest at level 2."""
    explorer.locator(".lm-TabBar-tab >> text=History").click()
    count = explorer.locator(".flexaudio-variations .noUi-handle")
    count.press("ArrowLeft")
    count.press("ArrowLeft")  # 4 -> 2
    assert explorer.locator(".flexaudio-variations .widget-readout").inner_text().strip() == "2"
    level = explorer.locator(".flexaudio-noise-level")
    level.locator(".noUi-handle").press("ArrowRight")  # 1 -> 2
    assert level.locator(".widget-readout").inner_text().strip() == "2"
    explorer.locator("button >> text=Vary").click()
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const status = panel.querySelector('.flexaudio-status');
            return status && status.innerText.startsWith('Clips #5 to #6')
                && panel.querySelectorAll('.flexaudio-history-view audio').length === 2
                && Array.from(panel.querySelectorAll('.flexaudio-history-view img'))
                    .every(image => image.complete && image.naturalWidth > 0);
        }""",
        timeout=180_000,
        polling=250,
    )
    explorer.screenshot(path=str(SCREENSHOTS / "explorer-variations.png"))
    explorer.locator("button >> text=Start from this take").click()  # clip #6, the newest, is selected
    page.wait_for_function(
        r"""() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const score = panel.querySelector('.flexaudio-similarity');
            return score && /Similarity of A and B: -?\d\.\d\d/.test(score.innerText)
                && panel.querySelectorAll('.flexaudio-compare audio').length === 2;
        }""",
        timeout=180_000,
        polling=250,
    )
    explorer.screenshot(path=str(SCREENSHOTS / "explorer-start-from.png"))
    assert "means nothing" in explorer.locator(".flexaudio-similarity").inner_text()  # offline
    compared = explorer.locator(".flexaudio-compare").inner_text()
    assert "A: clip #6" in compared and "B: clip #7" in compared, compared
    # The list's options show their spaces as non-breaking ones.
    options = explorer.locator(".flexaudio-history option").all_text_contents()
    labels = [option.replace("\xa0", " ") for option in options]
    lineage = ["#5 ← varied from #4 · ", "#6 ← varied from #4 · ", "#7 ← from #6 at level 2 · "]
    assert [label[: len(start)] for label, start in zip(labels[4:], lineage, strict=True)] == lineage, labels


def extend_loop_and_repaint(page, explorer) -> None:
    """In History (clip #7, 2 s, selected): Extend to 30 s, a loop of 1 bar at 240 bpm, then Repaint of
    the default section, each typed or clicked as a person would."""
    explorer.locator(".lm-TabBar-tab >> text=History").click()
    for name, value in (("extend-to", "30"), ("bars", "1"), ("bpm", "240")):
        field = explorer.locator(f".flexaudio-{name} input")
        field.fill(value)
        field.press("Enter")
    for button, clip in (("Extend", 8), ("Loop", 9), ("Repaint", 10)):
        explorer.locator(".lm-TabBar-tab >> text=History").click()
        explorer.locator(".flexaudio-history select").select_option(index=6)  # clip #7
        explorer.locator(f"button >> text={button}").click()
        page.wait_for_function(
            f"""() => {{
                const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
                const status = panel.querySelector('.flexaudio-status');
                const compared = panel.querySelector('.flexaudio-compare');  // drawn last
                return status && status.innerText.startsWith('Clip #{clip} ')
                    && compared && compared.innerText.includes('B: clip #{clip}');
            }}""",
            timeout=180_000,
            polling=250,
        )
    explorer.locator(".lm-TabBar-tab >> text=History").click()
    explorer.screenshot(path=str(SCREENSHOTS / "explorer-extend-loop-repaint.png"))
    options = explorer.locator(".flexaudio-history option").all_text_contents()
    labels = [option.replace("\xa0", " ") for option in options][7:]
    lineage = [
        "#8 ← #7 extended to 30.0 s · ",
        "#9 ← loop of #7, 1 bars · ",
        "#10 ← #7 repainted from 0.8 to 1.2 s · ",
    ]
    assert [label[: len(start)] for label, start in zip(labels, lineage, strict=True)] == lineage, labels


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
    """JupyterLab serving a copy of notebooks/; stops it and any endpoint the notebooks left."""
    root = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns("explorer-sessions", "clips"))
    notebook_env = {
        "FLEXAUDIO_TARGET": "local",
        "FLEXAUDIO_MODEL": "offline",
        "FLEXAUDIO_STATE_DIR": str(tmp_path / "state"),
        "FLEXAUDIO_API_KEY": "fake-local-api-key-4f1c0de9",
        "INFERENCE_URL": "",
        "INFERENCE_API_KEY": "",
    }
    for name, value in notebook_env.items():
        monkeypatch.setenv(name, value)  # the same state folder here, to stop the endpoint afterwards
    env = {**os.environ, **notebook_env}
    env.pop("HF_TOKEN", None)  # 01 asks for the token: the test presses Enter
    server = start_lab(root, tmp_path, env, overrides=TEST_OVERRIDES)
    try:
        yield server
    finally:
        stop_lab(server)
        from flexaudio_helpers.deploy import LocalDeployment

        LocalDeployment(echo=False).stop(ENDPOINT_NAME)  # in case 08 did not run


@pytest.mark.timeout(2400)  # the whole tour: minutes on an idle machine, many more on a busy one
def test_tour_in_jupyterlab(browser_tools, lab):
    problems: list[str] = []
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        try:
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: (
                    problems.append(f"console: {message.text}") if message.type == "error" else None
                ),
            )
            page.goto(f"{lab.base}/lab?token={lab.token}")
            page.wait_for_function(
                "() => window.jupyterapp && document.querySelector('.jp-DirListing-item')", timeout=120_000
            )
            for name in NOTEBOOKS:
                started = time.monotonic()
                open_and_run(page, name)
                print(f"{name}: all cells ran in {time.monotonic() - started:.1f} s")
                check_outputs(page, name)
                shot = screenshot(page, name)
                assert shot.stat().st_size > 10_000, f"{shot} looks empty"
                if name == EXPLORER_NOTEBOOK:
                    exercise_explorer(page)
            assert not page.locator(".jp-toast-button").count(), "a toast appeared over the notebooks"
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "failure.png"))
            raise
        finally:
            browser.close()
    # Widget problems show up as console errors; fail on ours, not on JupyterLab's own noise.
    ours = [problem for problem in problems if "widget" in problem.lower() or "flexaudio" in problem.lower()]
    assert not ours, ours
