"""The tour as a learner lives it: one JupyterLab, notebooks 01 to 08 in order, every kernel left running.

nbmake gives each notebook a fresh kernel and shuts it down at the end, which hides anything that
depends on a kernel staying alive (notebook 02's kernel used to stay the parent of the server, so
the cleanup notebook could not stop it from another kernel). Here a real JupyterLab server runs on
a loopback port, each notebook gets its own kernel through the server's sessions API (as opening
it in JupyterLab does), and its code cells run through that kernel's channels. The kernels stay up
until the end.

The kernel's environment is a learner's: an empty HOME, none of the project's variables, no FlexAI
CLI and no GPU, so `connect()` picks this machine and the offline model. The hidden token prompt of
01 is answered as a person would: Enter in the first journey, a (fake) token in the second.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import time
from pathlib import Path

import psutil
import pytest
from jupyter_client import BlockingKernelClient
from lab_server import LabServer, start_lab, stop_lab

pytestmark = pytest.mark.slow  # whole tours in JupyterLab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(path.name for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ANSI_COLOURS = re.compile(r"\x1b\[[0-9;]*m")
PROJECT_VARIABLES = re.compile(r"^(FLEXAUDIO_|INFERENCE_|HF_|HUGGING_FACE_)")
FAKE_HF_TOKEN = "hf_learnerJourneyFakeToken0123456789"
CELL_TIMEOUT = 600


def learner_environment(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without the project's variables, with an empty HOME."""
    env = {name: value for name, value in os.environ.items() if not PROJECT_VARIABLES.match(name)}
    for name in (
        "XDG_STATE_HOME",
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "JUPYTER_CONFIG_DIR",
    ):
        env.pop(name, None)
    return {**env, "HOME": str(home), **extra}


def state_folder(home: Path) -> Path:
    """Where platformdirs puts the state folder for a user whose HOME is `home` (Linux)."""
    return home / ".local" / "state" / "flexaudio"


def run_notebook(lab: LabServer, name: str, answer: str) -> tuple[list[dict], list[str]]:
    """Open `name` in a new kernel of `lab`, run its code cells in order; return outputs and prompts.

    Each output is a message content dict with its type under "output_type". The kernel is left
    running. A request for input (the hidden token box) is answered with `answer`, and its prompt
    text is returned.
    """
    session = lab.api(
        "POST", "/api/sessions", json={"path": name, "type": "notebook", "kernel": {"name": "python3"}}
    ).json()
    client = BlockingKernelClient()
    client.load_connection_file(lab.runtime_dir / f"kernel-{session['kernel']['id']}.json")
    client.start_channels()
    prompts: list[str] = []
    try:
        wait_for_kernel(client, timeout=120)
        notebook = json.loads((ROOT / "notebooks" / name).read_text())
        outputs: list[dict] = []

        def collect(message: dict) -> None:
            kind = message["header"]["msg_type"]
            if kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append({"output_type": kind, **message["content"]})

        def type_answer(message: dict) -> None:
            prompts.append(message["content"]["prompt"])
            client.input(answer)

        for cell in notebook["cells"]:
            if cell["cell_type"] != "code":
                continue
            reply = client.execute_interactive(
                "".join(cell["source"]),
                timeout=CELL_TIMEOUT,
                output_hook=collect,
                stdin_hook=type_answer,
                allow_stdin=True,
            )
            if reply["content"]["status"] != "ok":
                break  # the error output is in `outputs`; later cells would only fail after it
        return outputs, prompts
    finally:
        client.stop_channels()


def wait_for_kernel(client: BlockingKernelClient, timeout: float) -> None:
    """Ask for kernel_info until the kernel answers. (`wait_for_ready` can take a heartbeat that has
    not started yet for a dead kernel.)"""
    deadline = time.monotonic() + timeout
    while True:
        client.kernel_info()
        try:
            client.get_shell_msg(timeout=5)
            return
        except queue.Empty:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kernel did not answer in {timeout:.0f} s") from None


def text_of(output: dict) -> str:
    """Everything a person could read in one output."""
    if output["output_type"] == "stream":
        return output["text"]
    if output["output_type"] == "error":
        return ANSI_COLOURS.sub("", "\n".join([output["ename"], output["evalue"], *output["traceback"]]))
    return "\n".join(str(value) for value in output.get("data", {}).values())


def server_pids(state: Path) -> set[int]:
    """The process ids of the local servers saved in the state folder."""
    pids = set()
    for record in (state / "endpoints" / "local").glob("*.json"):
        pid = json.loads(record.read_text()).get("pid")
        if pid:
            pids.add(int(pid))
    return pids


def is_running(pid: int) -> bool:
    """True while `pid` is a live process (an exited one waiting to be collected does not count)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# The whole tour: about 4 minutes on an idle 2-core machine, several times that on a busy one.
@pytest.mark.timeout(2400)
@pytest.mark.parametrize(
    ("journey", "extra_env", "answer"),
    [
        ("nothing-set", {}, ""),  # Enter at the token box: skip
        ("offline-target", {"FLEXAUDIO_TARGET": "offline"}, FAKE_HF_TOKEN),
    ],
)
def test_tour_in_one_jupyterlab_with_kernels_left_running(tmp_path, journey, extra_env, answer):
    home = tmp_path / "home"
    home.mkdir()
    root = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns("clips", "explorer-sessions"))
    state = state_folder(home)
    lab = start_lab(root, tmp_path, learner_environment(home, **extra_env))
    seen_pids: set[int] = set()
    secrets_seen: set[str] = {FAKE_HF_TOKEN}
    problems: list[str] = []
    all_text: list[str] = []
    try:
        for name in NOTEBOOKS:
            started = time.monotonic()
            outputs, prompts = run_notebook(lab, name, answer)
            print(f"{journey}: {name} in {time.monotonic() - started:.1f} s")
            problems += [
                f"{name}: the hidden prompt does not say how to skip: {p!r}"
                for p in prompts
                if "Enter to skip" not in p
            ]
            for output in outputs:
                text = text_of(output)
                all_text.append(text)
                if output["output_type"] == "error":
                    problems.append(f"{name}: error output: {text[-2000:]}")
                elif output["output_type"] == "stream" and output["name"] == "stderr":
                    problems.append(f"{name}: stderr (a pink box in JupyterLab): {text[-500:]}")
            # Every key saved so far, to look for it in every output.
            for record in state.glob("endpoints/*/*.json"):
                secrets_seen.add(json.loads(record.read_text()).get("api_key") or FAKE_HF_TOKEN)
            seen_pids |= server_pids(state) if state.exists() else set()
            if name.startswith("02"):
                assert seen_pids, f"{journey}: notebook 02 saved no local server"
        assert not problems, "\n\n".join(problems)
        left = sorted(pid for pid in seen_pids if is_running(pid))
        assert not left, f"{journey}: servers still running after 08: {left}"
        leftover = sorted(str(path) for path in state.rglob("*") if path.is_file()) if state.exists() else []
        assert not leftover, f"{journey}: saved state left after 08: {leftover}"
        joined = "\n".join(all_text)
        leaked = [secret[:6] + "…" for secret in secrets_seen if secret and secret in joined]
        assert not leaked, f"{journey}: secrets in notebook outputs: {leaked}"
    finally:
        stop_lab(lab)
        for pid in seen_pids:  # never leave a server behind, whatever failed
            if is_running(pid):
                psutil.Process(pid).kill()
