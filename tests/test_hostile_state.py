"""Careless hands and planted files: the state folder, its locks, logs and keys (issue 13).

Real files, real symlinks and real server processes (offline model, 127.0.0.1). Each test
names what it guards against: deleting what is not ours, two servers for one name, writing
through a planted symlink, files others can read or write.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from flexaudio_helpers import forget_saved_state, write_env_file
from flexaudio_helpers.audio import Clip
from flexaudio_helpers.cli import main as cli
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.deploy import LocalDeployment, server_process, store
from flexaudio_helpers.deploy.endpoint_info import Endpoint
from flexaudio_helpers.deploy.server_process import free_port
from flexaudio_helpers.errors import FlexAudioError, UnsafeStateError
from flexaudio_helpers.state import state_dir, state_lock

NAME = "hostile-test"


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("FLEXAUDIO_STATE_DIR", str(folder))
    for name in ("INFERENCE_URL", "INFERENCE_API_KEY", "FLEXAUDIO_MODEL", "FLEXAUDIO_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return folder


def _servers() -> list[psutil.Process]:
    """Endpoint processes this test started: those serving from this test's state folder.

    (Servers are started detached, so they are nobody's children here; the session's shared
    endpoint has a state folder of its own.)
    """
    state = os.environ.get("FLEXAUDIO_STATE_DIR")
    found = []
    for process in psutil.process_iter():
        try:
            serving = "flexaudio_helpers.serving" in " ".join(process.cmdline())
            alive = serving and process.status() != psutil.STATUS_ZOMBIE
            if alive and process.environ().get("FLEXAUDIO_STATE_DIR") == state:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


@pytest.fixture
def no_stray_servers():
    """Fail if a test leaves an endpoint process behind, and end it either way."""
    before = {process.pid for process in _servers()}
    yield
    strays = [process for process in _servers() if process.pid not in before]
    for process in strays:
        process.kill()
        process.wait(10)
    assert not strays, f"endpoint processes left running: {[p.pid for p in strays]}"


def _save_some_state() -> None:
    store.save_record("local", NAME, url="http://127.0.0.1:1", api_key="k" * 20)
    store.save_record("flexai", NAME, url="https://example.invalid", api_key="k" * 20)
    LocalDeployment(echo=False).create_secret("MY_HF_TOKEN", "hf_notARealToken0123456789")
    write_env_file(Endpoint(name=NAME, url="http://127.0.0.1:1", api_key="k" * 20, target="local"))


# ----- 1. forget deletes only what is ours ---------------------------------------------------
def test_forget_keeps_a_folder_it_did_not_create_and_everything_not_ours(state, capsys):
    state.mkdir(mode=0o700)
    (state / "thesis.txt").write_text("four years of work")
    (state / "logs").mkdir()
    (state / "logs" / "notes.md").write_text("mine too")
    (state / "secrets").mkdir()
    (state / "secrets" / "bank.txt").write_text("not flexaudio's secret")
    _save_some_state()

    removed = forget_saved_state()

    assert (state / "thesis.txt").read_text() == "four years of work"
    assert (state / "logs" / "notes.md").read_text() == "mine too"
    assert (state / "secrets" / "bank.txt").read_text() == "not flexaudio's secret"
    assert sorted(removed) == [
        "endpoints/flexai/hostile-test.json",
        "endpoints/local/hostile-test.json",
        "inference.env",
        "secrets/MY_HF_TOKEN",
    ]
    assert not (state / "endpoints").exists() and not (state / "secrets" / "MY_HF_TOKEN").exists()
    printed = capsys.readouterr().out
    assert "Removed 4 saved files" in printed and "inference.env" in printed and "Kept" in printed


def test_forget_removes_the_folder_it_created_and_no_symlink_target(state, tmp_path):
    _save_some_state()  # the first use creates the folder, with its marker
    outside = tmp_path / "precious.txt"
    outside.write_text("not flexaudio's")
    (state / "logs").mkdir(mode=0o700)
    (state / "logs" / f"{NAME}.log").symlink_to(outside)

    removed = forget_saved_state()

    assert not state.exists(), "flexaudio created this folder and left nothing else in it"
    assert outside.read_text() == "not flexaudio's", "a symlink is removed, never what it points to"
    assert f"logs/{NAME}.log" in removed


# ----- 5. one server per name ----------------------------------------------------------------
def test_two_serves_of_one_name_start_one_server_and_stop_ends_it(state, no_stray_servers):
    deployments = [LocalDeployment(model="offline", echo=False) for _ in range(2)]
    start = threading.Barrier(2)
    endpoints: list[Endpoint | BaseException] = [None, None]

    def serve(index: int) -> None:
        start.wait()
        try:
            endpoints[index] = deployments[index].serve(NAME)
        except BaseException as exc:
            endpoints[index] = exc

    threads = [threading.Thread(target=serve, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(endpoint, Endpoint) for endpoint in endpoints), endpoints
    assert endpoints[0].url == endpoints[1].url, "the second caller reuses the first server"
    assert len(_servers()) == 1

    deployments[1].stop(NAME)
    assert _servers() == [], "stop ended the one server there was"


# ----- 6. planted symlinks, modes ------------------------------------------------------------
def test_a_planted_log_symlink_is_replaced_not_followed_and_modes_ignore_the_umask(
    state, tmp_path, no_stray_servers
):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    state.mkdir(mode=0o700)
    (state / "logs").mkdir(mode=0o700)
    (state / "logs" / f"{NAME}.log").symlink_to(victim)
    previous = os.umask(0)  # the most permissive umask: the modes must not depend on it
    try:
        deployment = LocalDeployment(model="offline", echo=False)
        deployment.serve(NAME)
        deployment.stop(NAME)
    finally:
        os.umask(previous)

    assert victim.read_text() == "precious"
    log = state / "logs" / f"{NAME}.log"
    assert not log.is_symlink() and stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "endpoints").stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "endpoints" / "local").stat().st_mode) == 0o700


def test_plot_does_not_write_through_a_planted_temporary_file(tmp_path):
    clip = Clip(np.zeros((2, 4410), dtype=np.float32), 44_100)
    clip.save(tmp_path / "clip.wav")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".out.png.part").symlink_to(victim)

    assert cli(["plot", str(tmp_path / "clip.wav"), "-o", str(tmp_path / "out.png")]) == 0

    assert victim.read_text() == "precious"
    assert (tmp_path / "out.png").read_bytes().startswith(b"\x89PNG")


def test_a_world_writable_state_folder_is_refused(state):
    state.mkdir()
    os.chmod(state, 0o777)
    with pytest.raises(FlexAudioError, match=r"can be written by others.*chmod 700"):
        state_dir()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a symlink to another user needs root")
def test_a_state_symlink_owned_by_someone_else_is_refused(state, tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    state.symlink_to(real)
    os.lchown(state, 4321, 4321)
    with pytest.raises(FlexAudioError, match="symlink owned by another user"):
        state_dir()


def test_a_key_file_others_can_read_is_refused_not_adopted(state, tmp_path):
    state.mkdir(mode=0o700)
    key_file = state / "local-endpoint.key"
    key_file.write_text("a-key-someone-else-can-read-0123456789")
    os.chmod(key_file, 0o644)
    environment = {k: v for k, v in os.environ.items() if k != "FLEXAUDIO_API_KEY"}
    port = str(free_port())
    command = [sys.executable, "-m", "flexaudio_helpers.serving", "--model", "offline", "--port", port]
    try:
        finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the server adopted the key and started instead of refusing it")
    assert finished.returncode != 0
    assert "readable or writable by others" in finished.stderr
    assert "a-key-someone-else" not in finished.stdout + finished.stderr


# ----- .env files (issue 26) -------------------------------------------------------------------
def test_a_dotenv_value_asking_for_another_variable_is_refused_never_sent(
    state, tmp_path, monkeypatch, capsys
):
    token = "hf_learnersOwnToken0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("INFERENCE_URL=http://127.0.0.1:9\n\nINFERENCE_API_KEY=${HF_TOKEN}\n")
    with pytest.raises(UnsafeStateError, match=r"\.env:3: INFERENCE_API_KEY holds '\$\{'") as caught:
        AudioClient()
    assert token not in str(caught.value)
    assert cli(["generate", "rain", "-o", str(tmp_path / "rain.wav")]) == 1
    error = capsys.readouterr().err
    assert ".env:3: INFERENCE_API_KEY holds" in error and token not in error
    assert len(error.strip().splitlines()) == 1  # one line, no traceback


def test_a_dotenv_others_can_write_is_refused(state, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dotenv = tmp_path / ".env"
    dotenv.write_text("INFERENCE_URL=http://127.0.0.1:9\nINFERENCE_API_KEY=sk-planted\n")
    os.chmod(dotenv, 0o620)
    with pytest.raises(UnsafeStateError, match=r"\.env can be written by others \(mode 620\).*chmod 600"):
        AudioClient()
    os.chmod(dotenv, 0o600)
    assert AudioClient().url == "http://127.0.0.1:9"
    assert (
        write_env_file(Endpoint(NAME, "http://127.0.0.1:1", "k" * 20, "local")).stat().st_mode & 0o777
        == 0o600
    )


def _waiting_in(thread: threading.Thread, function: str) -> bool:
    frame = sys._current_frames().get(thread.ident)
    while frame is not None and frame.f_code.co_name != function:
        frame = frame.f_back
    return frame is not None


def test_a_stop_that_loses_the_race_says_only_that_nothing_was_running(state, capsys):
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        server_process.record(NAME, pid=stand_in.pid, url="http://127.0.0.1:1", api_key="k" * 20)
        second = threading.Thread(target=cli, args=(["stop", "--target", "local", "--name", NAME],))
        with state_lock(f"local-{NAME}"):  # the first stop holds the lock...
            second.start()
            deadline = time.monotonic() + 60
            while not _waiting_in(second, "state_lock"):  # ...while the second waits for it
                assert second.is_alive() and time.monotonic() < deadline
                time.sleep(0.01)
            assert server_process.end_recorded(server_process.recorded(NAME))  # the first stops it
            server_process.remove_server_record(NAME)
        second.join(60)
    finally:
        stand_in.kill()
        stand_in.wait()
    printed = capsys.readouterr().out
    assert "No local server hostile-test was running." in printed
    assert "Stopped" not in printed, printed


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_dotenv_another_user_owns_is_refused(state, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dotenv = tmp_path / ".env"
    dotenv.write_text("INFERENCE_URL=http://127.0.0.1:9\nINFERENCE_API_KEY=sk-planted\n")
    os.chown(dotenv, 4321, 4321)
    with pytest.raises(UnsafeStateError, match=r"\.env belongs to another user \(uid 4321\)"):
        AudioClient()
