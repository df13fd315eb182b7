"""The local target: the same verbs, served by our own endpoint on this machine, and the choice of
model it serves (the real one when it can run here, else the offline model).

``serve`` starts ``python -m flexaudio_helpers.serving`` detached (`server_process`), so it
outlives the kernel and later notebooks reuse it. The API key goes to it in an environment
variable, never on the command line; the pid, its start time and the port are saved with the key
(mode 0600), so ``stop`` ends exactly that process, from any kernel.
"""

from __future__ import annotations

import getpass
import html
import importlib.util
import secrets
import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import DeploymentError, EndpointUnavailable, InvalidParameters
from ..files import read_log, read_private
from ..protocol import LOCAL_SERVER_KEY_ENV, OFFLINE_NOTICE
from ..redact import mask_json
from ..settings import setting
from ..state import fresh_private_file, state_dir, state_lock, write_private
from . import server_process, store
from .base import Deployment
from .endpoint_info import Endpoint, EndpointInfo

MODEL_ENV = "FLEXAUDIO_MODEL"
#: The secret under which notebook 01 stores the Hugging Face token.
HF_TOKEN_SECRET = "MY_HF_TOKEN"
TOKEN_PROMPT = "Hugging Face token (typing stays hidden; press Enter to skip): "
OFFLINE = "offline"
LOG_LINES = 200


@dataclass(frozen=True)
class ModelChoice:
    """The model the local endpoint will serve, and why."""

    model: str
    why: str

    @property
    def offline(self) -> bool:
        return self.model == OFFLINE

    def _repr_html_(self) -> str:
        """The choice, and on the offline model the plain notice, as one box (counts as shown)."""
        text = f"<b>Model:</b> {html.escape(self.model)} ({html.escape(self.why)})"
        if not self.offline:
            return f"<div>{text}</div>"
        _shown_banners.add(self.why)
        notice = html.escape(offline_banner(self.why).strip("=\n")).replace("\n", "<br>")
        return (
            "<div style='background:#fff3cd;color:#664d03;padding:6px 10px;border-radius:4px'>"
            f"{text}<br>{notice}</div>"
        )


def has_gpu() -> bool:
    """True when torch sees a CUDA (or Apple MPS) device (`serving.speed.pick_device`)."""
    try:
        from ..serving.speed import pick_device
    except ImportError:  # no torch: the local extra is not installed
        return False
    return pick_device() != "cpu"


def weights_downloaded(model: str) -> bool:
    """True when the hub model is already in the Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "model_index.json"), str)
    except Exception:  # not a hub id, no huggingface_hub: not downloaded
        return False


def secret_path(name: str) -> Path:
    """Where the local target keeps the secret `name` (mode 0600): notebook 01 saves the token there."""
    return state_dir() / "secrets" / store.check_name(name, "secret name")


def saved_hugging_face_token(secret_name: str | None = HF_TOKEN_SECRET) -> str | None:
    """The Hugging Face token for downloads on this machine, the one lookup of notebooks 01 and 06,
    `LocalDeployment.serve` and `load_generator`: the secret `secret_name` that 01 saved here (typed at
    its prompt, or from ``HF_TOKEN``); else ``HF_TOKEN`` (environment, then ``.env``); else an
    ``hf auth login`` (`huggingface_hub.get_token`). None when there is none.

    A secret 01 saved on FlexAI stays there: FlexAI does not give its value back.
    """
    saved = (read_private(secret_path(secret_name)) or "").strip() if secret_name else ""
    if saved or setting("HF_TOKEN"):
        return saved or setting("HF_TOKEN")
    try:
        from huggingface_hub import get_token
    except ImportError:
        return None
    return get_token()


def hugging_face_token() -> str | None:
    """Notebook 01's token: what `saved_hugging_face_token` finds (the token 01 saved here,
    ``HF_TOKEN`` from the environment or ``.env``, an ``hf auth login``), else asked (hidden) when a
    person is here.

    Returns None when the person presses Enter, or when nobody can answer (e.g. under nbmake), so
    the notebook can skip the step.
    """
    token = saved_hugging_face_token()
    if token:
        return token
    try:
        token = getpass.getpass(TOKEN_PROMPT)
    except Exception:  # no stdin here (IPython's StdinNotImplementedError, EOFError): nobody to ask
        return None
    return token.strip() or None


def choose_model(requested: str, *, token: str | None, forced: str | None = None) -> ModelChoice:
    """`forced`, else ``FLEXAUDIO_MODEL`` if set; else `requested` when it can run here; else offline."""
    if forced:
        return ModelChoice(forced, f"{forced} was chosen for this deployment")
    forced = setting(MODEL_ENV)
    if forced:
        return ModelChoice(forced, f"{MODEL_ENV}={forced}")
    if requested == OFFLINE:
        return ModelChoice(OFFLINE, "the offline model was asked for")
    if Path(requested).is_dir():
        return ModelChoice(requested, "a local model folder was given")
    if not has_gpu():
        return ModelChoice(OFFLINE, f"there is no GPU here for {requested}")
    if not (token or weights_downloaded(requested)):
        return ModelChoice(OFFLINE, f"{requested} is gated and there is no Hugging Face token or download")
    return ModelChoice(requested, "a GPU and the weights (or a Hugging Face token) are available")


# Reasons whose full offline banner this kernel has shown: a second notice would only repeat it.
_shown_banners: set[str] = set()


def announce_offline(why: str) -> None:
    """Print the offline banner, in full the first time in this kernel and in one line after that."""
    if why in _shown_banners:
        print(f"Offline model ({why}): its audio is noise, as the notice above says.")
    else:
        _shown_banners.add(why)
        print(offline_banner(why))


def offline_banner(why: str) -> str:
    """The plain warning shown whenever the local endpoint serves the offline model."""
    rule = "=" * 78
    return (
        f"{rule}\n{OFFLINE_NOTICE.upper()} ({why}).\n"
        "It runs the real Stable Audio pipeline with small random weights, to learn the workflow.\n"
        "For real audio: deploy to FlexAI (`flexai auth login`, then FLEXAUDIO_TARGET=flexai), or use a\n"
        f"GPU machine with a Hugging Face token. {MODEL_ENV}=<hub id or folder> forces a model.\n{rule}"
    )


class LocalDeployment(Deployment):
    """Serve on this machine with ``python -m flexaudio_helpers.serving`` (needs the ``local`` extra)."""

    target = store.LOCAL
    poll_interval = 0.5
    confirm_timeout = 300.0

    def __init__(self, *, model: str | None = None, echo: bool = True) -> None:
        #: Serve this model whatever `serve` asks for (``"offline"`` for the offline target).
        self.model = model
        self.echo = echo

    # -- secrets ----------------------------------------------------------------------------

    def create_secret(self, name: str, value: str) -> None:
        """Keep the Hugging Face token in the state folder (mode 0600) for the model download."""
        value = (value or "").strip()
        if not value:
            raise InvalidParameters("the secret value is empty", field="value", allowed="a non-empty token")
        path = write_private(secret_path(name), value)
        print(f"Saved secret {name} in {path} (mode 0600, not shown).")

    def secret_exists(self, name: str) -> bool:
        """True when a secret `name` is saved in the state folder."""
        return secret_path(name).is_file()

    def _hf_token(self, secret_name: str | None) -> str | None:
        if secret_name and not self.secret_exists(secret_name):
            print(f"No local secret {secret_name}: using HF_TOKEN or your Hugging Face login, if any.")
        return saved_hugging_face_token(secret_name)

    # -- endpoints --------------------------------------------------------------------------

    def _serve(self, name: str, model: str, hf_token_secret: str | None) -> Endpoint:
        """Start the local endpoint in the background, on a free port (a live one serving the same
        model is reused)."""
        self._check_installed()
        token = self._hf_token(hf_token_secret)
        choice = choose_model(model, token=token, forced=self.model)
        if choice.offline:
            announce_offline(choice.why)
        # One lock per name: a second serve (another kernel, thread) waits, then reuses this server.
        with state_lock(f"local-{name}"):
            return self._serve_locked(name, choice, token)

    def _serve_locked(self, name: str, choice: ModelChoice, token: str | None) -> Endpoint:
        record = server_process.recorded(name)
        if server_process.running(record):
            if record.get("model") == choice.model:
                print(f"{name} is already running here ({choice.model}, pid {record['pid']}): reusing it.")
                return store.endpoint_from_record(record)
            print(f"{name} serves {record.get('model')}, not {choice.model}: replacing it.")
            server_process.end_recorded(record)
        elif record:
            print(f"The saved {name} server (pid {record.get('pid')}) is gone: starting a new one.")
        server_process.remove_server_record(name)
        return self._start(name, choice, token, server_process.free_port())

    def _check_installed(self) -> None:
        needed = ("torch", "diffusers", "uvicorn", "psutil")
        missing = [module for module in needed if not importlib.util.find_spec(module)]
        if missing:
            raise DeploymentError(
                f"the local endpoint needs {', '.join(missing)}: pip install -e '.[local]' (or use FlexAI)"
            )

    def _start(self, name: str, choice: ModelChoice, token: str | None, port: int) -> Endpoint:
        command = server_process.server_command(choice.model, port)
        # A key you chose in FLEXAUDIO_API_KEY, else a fresh random one; either way saved 0600, never shown.
        api_key = setting(LOCAL_SERVER_KEY_ENV) or secrets.token_urlsafe(32)
        environment = server_process.server_environment(api_key, PYTHONUNBUFFERED="1")
        if token and not choice.offline:
            environment["HF_TOKEN"] = token
        log_path = self.log_path(name)
        if self.echo:
            shown = shlex.join(["python", *command[1:]])
            key_note = f"API key in ${LOCAL_SERVER_KEY_ENV}, not on the command line"
            print(f"$ {shown}  # {key_note}; output in {log_path}")
        with fresh_private_file(log_path) as log:  # 0600, never through a planted symlink
            pid = server_process.launch_detached(command, environment, log, log_path)
        record = server_process.record(
            name,
            pid=pid,
            url=server_process.server_url(port),
            api_key=api_key,
            model=choice.model,
            offline=choice.offline,
            port=port,
            log=str(log_path),
        )
        return store.endpoint_from_record(record)

    def endpoint(self, name: str) -> Endpoint:
        """The saved endpoint, if its server is still running (else a clear error)."""
        found = super().endpoint(name)
        if found.target == self.target and not server_process.running(server_process.recorded(name)):
            raise EndpointUnavailable(
                f"the local endpoint {name!r} is no longer running: serve it again "
                f"(deployment.serve({name!r}, ...))"
            )
        return found

    def log_path(self, name: str) -> Path:
        """Where the server `name` writes its output."""
        return state_dir() / "logs" / f"{store.check_name(name)}.log"

    def inspect(self, name: str) -> EndpointInfo:
        """``running`` (answers /health), ``starting`` (process up, model loading) or ``stopped``."""
        record = server_process.recorded(name)
        status = "stopped"
        if server_process.running(record):
            status = "running" if server_process.is_healthy(record["url"]) else "starting"
        raw = {**mask_json(_readable_times(record or {"name": name})), "status": status}
        return EndpointInfo(
            name=name,
            status=status,
            url=record.get("url") if record and status != "stopped" else None,
            target=self.target,
            raw=raw,
        )

    def logs(self, name: str, lines: int = LOG_LINES) -> str:
        """The last `lines` lines of the server's output."""
        text = read_log(self.log_path(name)) or ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, name: str) -> bool:
        """End exactly the recorded server process and forget the endpoint; True when one was running
        (decided under the endpoint's lock, so of two stops at once only one says it stopped it).

        Raises `DeploymentError` (the record kept) if the process outlives SIGTERM and SIGKILL.
        """
        with state_lock(f"local-{store.check_name(name)}"):
            record = server_process.recorded(name)
            stopped = server_process.end_recorded(record)
            if stopped:
                print(f"Stopped {name} (pid {record['pid']}).")
            elif self.echo:
                print(f"{name} is not running here.")
            server_process.remove_server_record(name)
        return stopped

    def delete(self, name: str) -> None:
        """Same as `stop` locally: there is nothing else to remove."""
        self.stop(name)


def make_room(*, stop_servers: bool) -> list[str]:
    """Before loading the model in this process: say which local servers (notebook 02's, or one
    started by the ``flexaudio`` command) already hold a copy of it on this machine, and stop those
    serving a real model when `stop_servers` (the learner's choice). Returns the names of the
    servers still running.

    A server is a separate process with its own copy of the model: on a GPU, two copies of Stable
    Audio Open need twice the memory. One serving the offline model holds no GPU memory (its
    weights are small and on the CPU), so it keeps running. `LocalDeployment.serve` starts a
    stopped one again later.
    """
    running = []
    for name in store.saved_names(store.LOCAL):
        record = server_process.recorded(name)
        if server_process.running(record):
            running.append((name, record))
    if not running:
        print("No local server is running here: this process will hold the only copy of the model.")
    kept = []
    for name, record in running:
        model, pid = record.get("model"), record["pid"]
        if record.get("offline"):
            print(f"The local server {name} (pid {pid}) serves the offline model: no GPU memory, kept.")
            kept.append(name)
            continue
        print(f"The local server {name} (pid {pid}) holds its own copy of the model ({model}).")
        if stop_servers:
            LocalDeployment(echo=False).stop(name)
        else:
            print("Kept running: the model is loaded a second time beside it.")
            kept.append(name)
    return kept


def _readable_times(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its epoch timestamps as local date and time (for people reading it)."""
    readable = dict(record)
    for key in ("create_time", "saved_at"):
        if isinstance(readable.get(key), int | float):
            moment = datetime.fromtimestamp(readable[key]).astimezone()
            readable[key] = moment.isoformat(sep=" ", timespec="seconds")
    return readable
