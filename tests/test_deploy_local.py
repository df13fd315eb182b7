"""The local deployment with real processes: serve, inspect, generate, stop, on the offline model."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flexaudio_helpers.deploy import LocalDeployment, clean_up, connect, endpoint, server_process, store
from flexaudio_helpers.deploy.local import (
    MODEL_ENV,
    choose_model,
    hugging_face_token,
    make_room,
    saved_hugging_face_token,
)
from flexaudio_helpers.deploy.server_process import STOP_GRACE_SECONDS
from flexaudio_helpers.errors import EndpointFailed, EndpointNotFound, EndpointUnavailable
from flexaudio_helpers.params import MODEL_ID

STATE_DIRS: list[Path] = []  # every state folder a test used, for the final sweep


@pytest.fixture(scope="session", autouse=True)
def no_server_outlives_the_tests():
    """After the session, end any local endpoint still recorded in a test's state folder."""
    yield
    for folder in STATE_DIRS:
        for record_file in (folder / "endpoints" / "local").glob("*.json"):
            record = json.loads(record_file.read_text())
            try:
                process = psutil.Process(record["pid"])
                if abs(process.create_time() - record["create_time"]) < 1:
                    process.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def local(tmp_path, monkeypatch) -> LocalDeployment:
    """A local deployment whose state lives in this test's temporary folder."""
    folder = tmp_path / "state"
    STATE_DIRS.append(folder)
    monkeypatch.setenv("FLEXAUDIO_STATE_DIR", str(folder))
    monkeypatch.setenv("FLEXAUDIO_TARGET", "local")
    for name in ("INFERENCE_URL", "INFERENCE_API_KEY", MODEL_ENV):
        monkeypatch.delenv(name, raising=False)
    deployment = connect()
    deployment.poll_interval = 0.2
    return deployment


def is_alive(process: psutil.Process) -> bool:
    """Running, not merely exited and waiting (as a zombie) for whichever process is its parent."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def generate(served):
    """One cheap generation on the endpoint, through the client a notebook would use."""
    with served.client(read_timeout=120) as client:
        return client.generate("Rain on a tin roof", audio_end_in_s=1.0, num_inference_steps=2)


@pytest.mark.slow  # a local server of its own, served, inspected and stopped
def test_serve_inspect_generate_stop(local, capfd):
    name = "stable-audio-open"
    served = local.serve(name, model=MODEL_ID, hf_token_secret="MY_HF_TOKEN")
    out = capfd.readouterr().out
    assert "OFFLINE MODEL" in out and "NOISE" in out  # no GPU here: the banner says what it is
    assert served.model == "offline" and served.url.startswith("http://127.0.0.1:")

    record_file = store.record_path("local", name)
    record = json.loads(record_file.read_text())
    assert stat.S_IMODE(record_file.stat().st_mode) == 0o600
    server = psutil.Process(record["pid"])
    assert served.api_key not in " ".join(server.cmdline())  # the key travels in the environment

    assert local.inspect(name).status in ("starting", "running")
    ready = local.wait_until_ready(name, timeout=180)
    assert ready == served
    info = local.inspect(name)
    assert (info.status, info.url) == ("running", served.url)
    assert info.raw["api_key"] == "***"

    again = local.serve(name, model=MODEL_ID)  # a live server is reused
    assert again == served and store.load_record("local", name)["pid"] == record["pid"]
    assert endpoint(name) == served  # what a notebook in another kernel finds
    assert local.endpoint(name) == served

    clip = generate(served)
    assert clip.offline and clip.duration == pytest.approx(1.0) and clip.seed is not None
    assert "Serving POST" in local.logs(name)

    local.stop(name)
    assert not is_alive(server)
    assert not port_open(record["port"])
    assert not record_file.exists()
    assert local.inspect(name).status == "stopped"
    with pytest.raises(EndpointNotFound):
        endpoint(name)
    captured = capfd.readouterr()
    for text in (captured.out, captured.err, repr(served), repr(info), info.to_json()):
        assert served.api_key not in text


def test_stale_state_is_replaced_and_only_the_recorded_process_is_stopped(local):
    # A record whose pid now belongs to an unrelated process (a pid reused after a reboot).
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        store.save_record(
            "local", "sa", url="http://127.0.0.1:9", api_key="old", model="offline", pid=bystander.pid,
            create_time=psutil.Process(bystander.pid).create_time() - 1000, port=9,
        )  # fmt: skip
        assert local.inspect("sa").status == "stopped"
        served = local.serve("sa", model="offline")
        new_pid = store.load_record("local", "sa")["pid"]
        assert new_pid != bystander.pid and served.api_key != "old"
        local.stop("sa")
        assert bystander.poll() is None  # never touched
        assert not psutil.pid_exists(new_pid) or psutil.Process(new_pid).status() == psutil.STATUS_ZOMBIE
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.slow  # a server of its own that fails to start
def test_a_server_that_cannot_start_fails_with_its_logs(local, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, "/nonexistent/model-folder")
    local.serve("broken")
    with pytest.raises(EndpointFailed, match="could not load") as caught:
        local.wait_until_ready("broken", timeout=180)
    assert caught.value.status == "stopped"
    with pytest.raises(EndpointUnavailable, match="no longer running"):
        local.endpoint("broken")
    local.stop("broken")


def test_clean_up_on_this_machine_stops_the_recorded_server_once(local):
    """Notebook 08 with the local target: the recorded process is ended; a second clean-up says so."""
    recorded = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        server_process.record("sa", pid=recorded.pid, url="http://127.0.0.1:9", model="offline", port=9)
        assert clean_up(local, "sa") == ["Stopped the local server sa."]
        assert recorded.wait(timeout=30) is not None and store.load_record("local", "sa") is None
        assert clean_up(local, "sa") == ["No local server sa was running."]
    finally:
        recorded.kill()
        recorded.wait()


def test_local_secret_is_private_and_never_shown(local, capfd):
    assert not local.secret_exists("MY_HF_TOKEN")
    local.create_secret("MY_HF_TOKEN", "hf_LocalSecret987654321\n")
    path = store.state_dir() / "secrets" / "MY_HF_TOKEN"
    assert path.read_text() == "hf_LocalSecret987654321"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local.secret_exists("MY_HF_TOKEN")
    captured = capfd.readouterr()
    assert "hf_LocalSecret987654321" not in captured.out + captured.err


def test_model_choice(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert choose_model(MODEL_ID, token="hf_x").model == "offline"  # no GPU on this machine
    assert choose_model("offline", token=None).model == "offline"
    monkeypatch.setenv(MODEL_ENV, MODEL_ID)
    assert choose_model("offline", token=None).model == MODEL_ID  # the variable wins
    assert choose_model(MODEL_ID, token=None, forced="offline").model == "offline"  # the offline target


def test_environment_overrides_serving(local, monkeypatch):
    monkeypatch.setenv("INFERENCE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("INFERENCE_API_KEY", "env-key")
    served = local.serve("sa")
    assert (served.url, served.api_key, served.target) == ("http://127.0.0.1:9", "env-key", "env")
    assert store.load_record("local", "sa") is None  # nothing was started


STARTER = """
import sys, time
from flexaudio_helpers.deploy import LocalDeployment
LocalDeployment(model="offline", echo=False).serve("kept")
print("served", flush=True)
time.sleep(600)  # like notebook 02's kernel: alive, never collecting its children
"""


def test_stop_from_another_kernel_while_the_starter_lives(local, tmp_path):
    """Notebook 08 stops the server that 02's kernel started, with 02's kernel still running.

    The starter used to stay the server's parent, so the ended server stayed a zombie that only the
    starter could collect, and stop() raised psutil's TimeoutExpired after 30 s.
    """
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        said = []
        for line in starter.stdout:  # the offline banner comes first
            said.append(line)
            if line.strip() == "served":
                break
        assert said and said[-1].strip() == "served", "".join(said)
        record = store.load_record("local", "kept")
        server = psutil.Process(record["pid"])
        assert server.ppid() != starter.pid, "the kernel that served must not be the server's parent"
        started = time.monotonic()
        local.stop("kept")
        assert time.monotonic() - started < STOP_GRACE_SECONDS, "stop waited for a zombie"
        assert not is_alive(server)
        assert store.load_record("local", "kept") is None
    finally:
        starter.kill()
        starter.wait()


def test_make_room_says_what_holds_the_model_and_stops_it_only_when_asked(local, capfd):
    """Notebook 06 with the local target: 02's server is named before the model loads here, kept
    without the learner's flag, stopped (and its record forgotten) with it, before make_room returns."""
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    offline = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        server_process.record("stable-audio-open", pid=server.pid, url="http://127.0.0.1:9", model=MODEL_ID)
        server_process.record(
            "practice", pid=offline.pid, url="http://127.0.0.1:8", model="offline", offline=True
        )
        assert make_room(stop_servers=False) == ["practice", "stable-audio-open"]
        out = capfd.readouterr().out
        assert f"stable-audio-open (pid {server.pid}) holds its own copy" in out and "Kept running" in out
        assert server.poll() is None and store.load_record("local", "stable-audio-open")

        assert make_room(stop_servers=True) == ["practice"]  # the offline model holds no GPU memory
        assert server.poll() is not None  # ended before make_room returned: the card is free to load
        assert offline.poll() is None
        out = capfd.readouterr().out
        assert out.index("holds its own copy") < out.index(f"Stopped stable-audio-open (pid {server.pid})")
        assert f"practice (pid {offline.pid}) serves the offline model: no GPU memory, kept" in out
        assert store.load_record("local", "stable-audio-open") is None
        LocalDeployment(echo=False).stop("practice")
        make_room(stop_servers=True)
        assert "No local server is running here" in capfd.readouterr().out
    finally:
        for process in (server, offline):
            process.kill()
            process.wait()


def test_the_token_notebook_01_saved_is_the_one_every_lookup_finds(local, tmp_path, monkeypatch):
    """01 saves the token (typed at its prompt) as a local secret, or finds it in .env or a login;
    01's prompt, 06, serve and load_generator all look in the same places, in the same order."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-token"))  # no `hf auth login`
    monkeypatch.chdir(tmp_path)
    assert saved_hugging_face_token() is None
    (tmp_path / "hf-token").write_text("hf_fromHfAuthLogin0123456789\n")
    assert saved_hugging_face_token() == hugging_face_token() == "hf_fromHfAuthLogin0123456789"
    (tmp_path / ".env").write_text("HF_TOKEN=hf_fromDotEnv0123456789\n")
    assert saved_hugging_face_token() == hugging_face_token() == "hf_fromDotEnv0123456789"
    local.create_secret("MY_HF_TOKEN", "hf_typedAtThePrompt0123456789")
    assert saved_hugging_face_token() == hugging_face_token() == "hf_typedAtThePrompt0123456789"
    assert local._hf_token("MY_HF_TOKEN") == "hf_typedAtThePrompt0123456789"


def test_notebook_06_makes_room_before_it_loads_the_model():
    """06 says what holds the card, and asks the learner's flag, before its first load; its closing
    text no longer tells the learner to free a copy that the next cell then finds and reuses."""
    notebook = json.loads((Path(__file__).parents[1] / "notebooks" / "06_local_gpu.ipynb").read_text())
    code = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    first_load = next(
        i for i, text in enumerate(code) if "from_pretrained(" in text or "load_generator(" in text
    )
    assert any("make_room(stop_servers=STOP_SERVER_FIRST)" in text for text in code[:first_load])
    prose = " ".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown")
    assert "Free this one first" not in prose and "reuses the one" in prose
