"""The FlexAI target: a thin wrapper over the real ``flexai`` CLI.

Every command runs from an argument list (never a shell) and is printed first as
``$ flexai ...`` with secrets masked, so a notebook shows the exact CLI steps of the tutorial.
Secret values travel on stdin, never on the command line; every other command gets a closed
stdin, so a confirmation prompt reads end-of-file instead of hanging. The endpoint's API key,
printed once by ``serve``, is captured from its output as it streams and saved at once (mode
0600); it is never printed.

What the CLI prints is only partly documented (see the project's flexai-platform notes), so
parsing is tolerant, nothing is trusted on its exit code alone (a cobra CLI exits 0 on an
unknown subcommand), and every surprise ends in an error that says what to do:

- ``delete`` and ``stop`` are checked afterwards with ``inspect``/``list``; the saved key is
  forgotten only once the endpoint is really gone.
- A key found anywhere in ``serve``'s output (stdout or stderr, a table, colours, another label)
  is saved before anything else, even when ``serve`` fails or never exits.
- ``list`` tables with truncated cells count as "maybe", settled by ``inspect``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import (
    ApiKeyNotFound,
    CLINotFound,
    CommandFailed,
    DeploymentError,
    InvalidParameters,
    NotLoggedIn,
    UnsupportedCommand,
)
from ..params import MODEL_ID
from ..redact import TABLE_BARS, find_api_key, mask_json, mask_text, mask_tokens, strip_ansi
from ..state import state_dir, write_private
from . import store
from .base import Deployment
from .endpoint import Endpoint, EndpointInfo
from .readiness import format_elapsed

INSTALL_COMMAND = "curl -fsSL https://cli.flex.ai/install.sh | sh"
LOGIN_COMMAND = "flexai auth login"
# Where the official installer puts the binary (its scripts add the folder to PATH themselves).
INSTALLED_PATH = Path("~/.flexai/bin/flexai")
CONSOLE = "the FlexAI console"
# `auth status` output format is undocumented, and it may exit 0 when logged out: these words
# mean "not logged in" ("token refreshed" or "expires in 3h" do not).
LOGGED_OUT_WORDS = re.compile(
    r"(?i)not (logged|signed) in|logged out|unauthenticated|not authenticated|authentication required"
    r"|login required|please (log|sign) ?in|no (valid )?(access )?token|expired"
)
# A failing command whose output says this failed for want of a login.
AUTH_FAILURE_WORDS = re.compile(
    r"(?i)not (logged|signed) in|logged out|unauthenticated|login required|unauthori[sz]ed|\b401\b"
    r"|please (log|sign) ?in|flexai auth login|token (has )?expired"
)
# A command that failed because the thing it names is not there.
NOT_FOUND_WORDS = re.compile(r"(?i)not found|no such|does not exist|doesn't exist|\b404\b")
ALREADY_EXISTS_WORDS = re.compile(r"(?i)already exists|already in use|\b409\b")
# Flags that skip a confirmation prompt, in order of preference (passed only when --help lists one).
NON_INTERACTIVE_FLAGS = ("--yes", "--force", "-y", "-f")
# Statuses that count as "delete happened" (terminal "deleting" included) and as "stop happened".
GONE_STATUSES = ("deleting", "deleted", "terminating", "terminated")
STOPPED_STATUSES = (*GONE_STATUSES, "stopped", "stopping", "stop in progress", "suspended", "paused")
GONE = "gone"
COMMAND_TIMEOUT = 300.0
LOGS_TIMEOUT = 30.0


class EndpointStillRunning(DeploymentError):
    """``delete``/``stop`` exited 0 but the endpoint is still there (and still billed)."""


def find_cli() -> str | None:
    """The path of the ``flexai`` executable: on PATH, else where the installer puts it."""
    found = shutil.which("flexai")
    if found:
        return found
    installed = INSTALLED_PATH.expanduser()
    return str(installed) if installed.is_file() and os.access(installed, os.X_OK) else None


def table_lookup(text: str, name: str) -> str:
    """Whether a text table lists `name`: ``"yes"``, ``"maybe"`` (a cell cut short with …) or ``"no"``.

    Cells are split on whitespace and on the bars ``│ ┃ ║ ┆ |``; a whole cell must match (unlike
    ``grep -q NAME``, no prefix matches), except that a truncated cell matching the start of `name`
    is a maybe.
    """
    answer = "no"
    for line in strip_ansi(text).splitlines():
        for cell in re.split(rf"[\s{TABLE_BARS},]+", line):
            if cell == name:
                return "yes"
            stem = cell.removesuffix("…").removesuffix("...")
            if stem != cell and len(stem) >= 2 and name.startswith(stem):
                answer = "maybe"
    return answer


def table_has(text: str, name: str) -> bool:
    """True when `name` is a whole cell of a text table (``grep -q NAME``, without prefix matches)."""
    return table_lookup(text, name) == "yes"


def non_interactive_flag(help_text: str) -> str | None:
    """The flag that skips a confirmation (``--yes``, ``--force``, ``-y``, ``-f``) if `help_text` lists one.

    A short flag counts only on a line whose long form (if any) is yes/force: ``-f, --file`` is not.
    """
    offered = set()
    for line in strip_ansi(help_text).splitlines():
        longs = re.findall(r"(?<![\w-])--([a-z][\w-]*)", line)
        offered.update(f"--{flag}" for flag in longs if flag in ("yes", "force"))
        if set(longs) <= {"yes", "force"}:
            offered.update(f"-{flag}" for flag in re.findall(r"(?<![\w-])-([yf])\b", line))
    return next((flag for flag in NON_INTERACTIVE_FLAGS if flag in offered), None)


def subcommands(help_text: str) -> set[str]:
    """The subcommand names listed by ``--help`` (the "Available Commands:" block of Go CLIs)."""
    lines = strip_ansi(help_text).splitlines()
    starts = [index for index, line in enumerate(lines) if re.match(r"(?i)\s*(available )?commands:", line)]
    if starts:
        block = []
        for line in lines[starts[0] + 1 :]:
            if not line.strip() or not line[:1].isspace():
                break
            block.append(line)
    else:  # no recognised header: every indented line may start with a subcommand name
        block = [line for line in lines if line[:1].isspace()]
    names = {line.split()[0].rstrip(",:") for line in block if line.split()}
    return {name for name in names if re.match(r"^[a-z][\w-]*$", name)}


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` or None when any level is missing or not an object."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def parse_json_output(text: str) -> Any:
    """The JSON document in a command's output, skipping any notice printed before it."""
    text = strip_ansi(text)
    start = min((index for index in (text.find("{"), text.find("[")) if index >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON in the output")
    return json.JSONDecoder().raw_decode(text[start:])[0]


class FlexAIDeployment(Deployment):
    """Serve on FlexAI's cloud through the ``flexai`` CLI (installed and logged in).

    The waits are bounded by the class attributes below (seconds); tests shorten them.
    """

    target = "flexai"
    poll_interval = 10.0  # the official scripts poll every 10 s
    confirm_timeout = 900.0  # a fresh endpoint may still be downloading 5 GB of weights
    #: How long `serve` may take to create the endpoint (a slow create takes many minutes).
    serve_timeout = 900.0
    #: How long `serve` may keep running after printing the key (some CLIs follow the logs).
    serve_exit_grace = 30.0
    #: How long `delete`/`stop` are checked for the endpoint to go (or stop) before giving up.
    gone_timeout = 120.0

    def __init__(self, executable: str | None = None, *, echo: bool = True) -> None:
        found = executable or find_cli()
        if not found:
            raise CLINotFound(
                "the flexai CLI is not installed. Install it with\n"
                f"    {INSTALL_COMMAND}\n"
                f"then add ~/.flexai/bin to PATH and run `{LOGIN_COMMAND}`. "
                "Or use this machine instead: FLEXAUDIO_TARGET=local."
            )
        self.executable = found
        self.echo = echo
        #: Every command run so far, as shown (secrets masked): the notebook's CLI transcript.
        self.commands: list[str] = []
        self._secrets: set[str] = set()
        self._verbs: dict[str, set[str]] = {}

    # -- running commands -------------------------------------------------------------------

    def _mask(self, text: str) -> str:
        return mask_text(text, self._secrets)

    def _announce(self, arguments: tuple[str, ...] | list[str], note: str = "") -> str:
        shown = self._mask(shlex.join(["flexai", *arguments])) + (f"  # {note}" if note else "")
        self.commands.append(shown)
        if self.echo:
            print(f"$ {shown}", flush=True)
        return shown

    def run(
        self,
        *arguments: str,
        stdin: str | None = None,
        combine: bool = False,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
        note: str = "",
    ) -> subprocess.CompletedProcess[str]:
        """Run ``flexai <arguments>``, showing the command first; non-zero exit raises when `check`.

        Without `stdin` the command gets a closed stdin: a prompt reads end-of-file, never hangs.
        """
        shown = self._announce(arguments, note)
        try:
            result = subprocess.run(
                [self.executable, *arguments],
                input=stdin,
                stdin=subprocess.DEVNULL if stdin is None else None,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if combine else subprocess.PIPE,
                text=True,
                timeout=timeout,
                env=self._environment(),
            )
        except FileNotFoundError:
            raise CLINotFound(
                f"the flexai CLI is gone from {self.executable}; install it: {INSTALL_COMMAND}"
            ) from None
        except subprocess.TimeoutExpired as exc:
            raise CommandFailed(
                f"`{shown}` did not finish within {timeout:.0f} s", command=shown, output=self._partial(exc)
            ) from None
        if check and result.returncode != 0:
            raise self._failure(shown, result)
        return result

    @staticmethod
    def _environment() -> dict[str, str]:
        return {**os.environ, "NO_COLOR": "1"}

    def _partial(self, exc: subprocess.TimeoutExpired) -> str:
        output = exc.stdout or b""
        return self._mask(output.decode(errors="replace") if isinstance(output, bytes) else output)

    @staticmethod
    def _output(result: subprocess.CompletedProcess[str]) -> str:
        return strip_ansi((result.stdout or "") + (result.stderr or ""))

    def _failure(self, shown: str, result: subprocess.CompletedProcess[str]) -> DeploymentError:
        output = self._mask(self._output(result)).strip()
        if AUTH_FAILURE_WORDS.search(output):
            return NotLoggedIn(
                f"`{shown}` failed because the flexai CLI is not logged in. Run `{LOGIN_COMMAND}` "
                f"in a terminal, then try again. The CLI said:\n{output}"
            )
        return CommandFailed(
            f"`{shown}` failed (exit {result.returncode}). The CLI said:\n{output or '(nothing)'}",
            command=shown,
            returncode=result.returncode,
            output=output,
        )

    # -- login and subcommands --------------------------------------------------------------

    def logged_in(self) -> tuple[bool, str]:
        """Whether ``flexai auth status`` says we are logged in, and why we think so (one sentence).

        Judged by what it says, not only its exit code: it may exit 0 with "Not authenticated".
        """
        result = self.run("auth", "status", combine=True, check=False, timeout=60)
        answer = mask_tokens(self._mask(strip_ansi(result.stdout or ""))).strip()
        said = " ".join(answer.split())[:200] or "(nothing)"
        if result.returncode != 0:
            return False, f"`flexai auth status` exited {result.returncode} and said: {said}"
        if LOGGED_OUT_WORDS.search(answer):
            return False, f"`flexai auth status` exited 0 but said: {said}"
        return True, f"`flexai auth status` said: {said}"

    def ensure_logged_in(self) -> str:
        """Raise `NotLoggedIn` unless the CLI reports a login; return why we think it is logged in."""
        ok, why = self.logged_in()
        if not ok:
            raise NotLoggedIn(
                f"the flexai CLI is not logged in ({why}). Run `{LOGIN_COMMAND}` in a terminal, "
                "then try again."
            )
        return why

    def subcommands_of(self, group: str) -> set[str]:
        """The subcommands of ``flexai <group>`` this CLI version offers (read from its --help)."""
        if group not in self._verbs:
            result = self.run(group, "--help", combine=True, check=False, timeout=60)
            self._verbs[group] = subcommands(result.stdout or "") if result.returncode == 0 else set()
        return self._verbs[group]

    def inference_verbs(self) -> set[str]:
        """The ``flexai inference`` subcommands this CLI version offers (read from its --help)."""
        return self.subcommands_of("inference")

    def _require_verb(self, verb: str, name: str = "NAME") -> None:
        # Checked first because cobra prints help and exits 0 on an unknown subcommand.
        verbs = self.inference_verbs()
        if verb not in verbs:
            offers = ", ".join(sorted(verbs)) or "none found in `flexai inference --help`"
            advice = f"Update the CLI ({INSTALL_COMMAND}) or {verb} the endpoint in {CONSOLE}."
            if verb in ("stop", "delete"):
                advice += (
                    " Until then it is still running and billed. To stop paying but keep it, scale it "
                    f"to zero: deployment.scale_to_zero({name!r}) runs\n    {scale_command(name)}"
                )
            raise UnsupportedCommand(
                f"this flexai CLI has no `flexai inference {verb}` subcommand (it offers: {offers}). {advice}"
            )

    def _skip_prompt_flag(self, verb: str) -> list[str]:
        """``[--yes]`` (or --force, -y, -f) when ``flexai inference VERB --help`` lists it, else []."""
        result = self.run("inference", verb, "--help", combine=True, check=False, timeout=60)
        flag = non_interactive_flag(result.stdout or "") if result.returncode == 0 else None
        return [flag] if flag else []

    # -- secrets ----------------------------------------------------------------------------

    def create_secret(self, name: str, value: str) -> None:
        """``flexai secret create NAME`` with the value on stdin; kept as is when it exists."""
        store.check_name(name, "secret name")
        value = (value or "").strip()
        if not value:
            raise InvalidParameters("the secret value is empty", field="value", allowed="a non-empty token")
        self._secrets.add(value)
        if self.secret_exists(name):
            print(
                f"Secret {name} already exists on FlexAI: keeping it (the CLI has no `secret update`; "
                "create the new token under another name to change it)."
            )
            return
        result = self.run("secret", "create", name, stdin=value, combine=True, note="value sent on stdin")
        self._show(result.stdout)

    def secret_exists(self, name: str) -> bool:
        """True when ``flexai secret inspect NAME`` succeeds, else when ``flexai secret list`` shows it.

        ``inspect`` is used only when ``flexai secret --help`` lists it (cobra would exit 0 on a
        missing one). A list cell cut short (``MY_HF_TO…``) counts as there: nothing is created twice.
        """
        store.check_name(name, "secret name")
        if "inspect" in self.subcommands_of("secret"):
            result = self.run("secret", "inspect", name, combine=True, check=False, timeout=60)
            if result.returncode == 0:
                return True
            if AUTH_FAILURE_WORDS.search(self._mask(result.stdout or "")):
                raise self._failure(self.commands[-1], result)
            if NOT_FOUND_WORDS.search(result.stdout or ""):
                return False
            # Any other failure: the list decides.
        found = table_lookup(self.run("secret", "list").stdout, name)
        if found == "maybe":
            print(f"`flexai secret list` shows a name cut short that may be {name}: counting it as there.")
        return found != "no"

    # -- endpoints --------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        """True when ``flexai inference list`` shows `name` (for a cell cut short, ``inspect`` decides)."""
        found = table_lookup(self.run("inference", "list").stdout, name)
        if found == "maybe":
            return self._state(name) not in (GONE, None)
        return found == "yes"

    def serve(
        self,
        name: str,
        model: str = MODEL_ID,
        task: str = "text-to-audio",
        hf_token_secret: str | None = None,
        *,
        runtime: str = "flexserve",
    ) -> Endpoint:
        """``flexai inference serve NAME --runtime flexserve --hf-token-secret S -- --task T --model M``.

        Returns as soon as the endpoint is created (its URL comes later: `wait_until_ready`).
        An endpoint of that name that already exists is reused when its API key is saved here.
        The key is saved the moment it appears in the output, whatever happens next.
        """
        overridden = store.endpoint_from_env(name)
        if overridden:
            print(f"{store.URL_ENV} is set: using that endpoint, not serving {name!r} (unset it to deploy).")
            return overridden
        store.check_name(name)
        if hf_token_secret and not self.secret_exists(store.check_name(hf_token_secret, "hf_token_secret")):
            raise DeploymentError(
                f"no FlexAI secret named {hf_token_secret!r}: create it first with "
                f"deployment.create_secret({hf_token_secret!r}, token)"
            )
        if self.exists(name):
            return self._reuse(name)
        arguments = ["inference", "serve", name, "--runtime", runtime]
        if hf_token_secret:
            arguments += ["--hf-token-secret", hf_token_secret]
        arguments += ["--", "--task", task, "--model", model]
        shown = self._announce(arguments)
        returncode, output, key = self._stream_serve(arguments, name, model=model, task=task)
        if key is None and returncode not in (0, None) and AUTH_FAILURE_WORDS.search(output):
            raise NotLoggedIn(
                f"`{shown}` failed because the flexai CLI is not logged in. Run `{LOGIN_COMMAND}` in a "
                f"terminal, then try again. The CLI said:\n{self._mask_output(output)}"
            )
        if key is None and returncode != 0 and ALREADY_EXISTS_WORDS.search(output):
            print(f"`flexai inference serve` says {name} already exists (the list did not show it).")
            return self._reuse(name)
        if key is None:
            raise self._key_not_found(name, output, shown, returncode)
        if self.echo:
            print(self._mask_output(output))
        saved_in = store.record_path(self.target, name)
        if returncode is None:
            print(
                f"`flexai inference serve` was still running {self.serve_exit_grace:.0f} s after printing "
                "the API key: stopped following it (the endpoint itself is not affected)."
            )
        elif returncode != 0:
            raise CommandFailed(
                f"`{shown}` failed (exit {returncode}) after printing the endpoint's API key, which is "
                f"saved in {saved_in} (mode 0600). The endpoint may exist and be billed: check with "
                f"deployment.inspect({name!r}). The CLI said:\n{self._mask_output(output)}",
                command=shown,
                returncode=returncode,
                output=self._mask_output(output),
            )
        print(f"API key captured and saved in {saved_in} (mode 0600, not shown).")
        return store.find_endpoint(name, self.target)

    def _stream_serve(
        self, arguments: list[str], name: str, *, model: str, task: str
    ) -> tuple[int | None, str, str | None]:
        """Run ``serve``, saving the key as soon as a complete line shows it.

        Returns (exit code, or None when we stopped it; the whole output, stdout and stderr; key).
        `serve` is stopped `serve_exit_grace` s after the key appears, or at `serve_timeout`.
        """
        try:
            process = subprocess.Popen(
                [self.executable, *arguments],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # the key may come on either stream
                env=self._environment(),
            )
        except FileNotFoundError:
            raise CLINotFound(
                f"the flexai CLI is gone from {self.executable}; install it: {INSTALL_COMMAND}"
            ) from None
        chunks: list[bytes] = []
        reader = threading.Thread(target=_read_all, args=(process.stdout, chunks), daemon=True)
        reader.start()
        started = time.monotonic()
        key, key_seen = None, 0.0
        while True:
            finished = process.poll() is not None
            if finished:
                reader.join(timeout=10)
                process.stdout.close()
            text = b"".join(chunks).decode(errors="replace")
            if key is None:
                # While it runs, only whole lines (a key cut mid-line must not be saved half) and
                # only labelled keys: an unlabelled UUID counts only once serve has succeeded.
                whole_lines = text if finished else text[: text.rfind("\n") + 1]
                key = find_api_key(whole_lines, lone_uuid=finished and process.returncode == 0)
                if key:
                    self._save_key(name, key, model=model, task=task)
                    key_seen = time.monotonic()
            if finished:
                return process.returncode, text, key
            now = time.monotonic()
            if now - started >= self.serve_timeout or (key and now - key_seen >= self.serve_exit_grace):
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                reader.join(timeout=10)
                process.stdout.close()
                text = b"".join(chunks).decode(errors="replace")
                if key is None:
                    key = find_api_key(text, lone_uuid=False)
                    if key:
                        self._save_key(name, key, model=model, task=task)
                return None, text, key
            time.sleep(0.05)

    def _save_key(self, name: str, key: str, *, model: str, task: str) -> None:
        # Saved before anything else can fail: FlexAI shows the key only this once.
        self._secrets.add(key)
        store.save_record(self.target, name, api_key=key, model=model, task=task, url=None)

    def _mask_output(self, output: str) -> str:
        """Serve output fit to show: known secrets and anything key-shaped masked."""
        return mask_tokens(self._mask(strip_ansi(output))).strip() or "(nothing)"

    def _reuse(self, name: str) -> Endpoint:
        record = store.load_record(self.target, name)
        if not record or not record.get("api_key"):
            raise ApiKeyNotFound(
                f"endpoint {name!r} already exists on FlexAI, but its API key is not saved here "
                "(FlexAI prints it only when the endpoint is created). Paste it with\n"
                f"    flexaudio_helpers.deploy.remember_endpoint({name!r}, api_key='...')\n"
                f"or set {store.KEY_ENV} (and {store.URL_ENV}) in .env; "
                "or delete the endpoint and serve again."
            )
        print(f"Endpoint {name} already exists on FlexAI: reusing it (API key from the saved state).")
        return store.endpoint_from_record(record)

    def _key_not_found(self, name: str, output: str, shown: str, returncode: int | None) -> DeploymentError:
        # The key may be in there somewhere we could not parse: keep it private, never print it,
        # and show nothing key-shaped from it.
        saved = write_private(state_dir() / f"flexai-serve-{name}.out", output)
        how = {0: "exited 0", None: f"did not finish within {self.serve_timeout:.0f} s"}.get(
            returncode, f"failed (exit {returncode})"
        )
        paste = (
            f"The whole output is saved, unshown, in {saved} (mode 0600). If it holds the key, paste "
            f"it with\n    flexaudio_helpers.deploy.remember_endpoint({name!r}, api_key='...')\n"
            f"or set {store.KEY_ENV} in .env."
        )
        if returncode == 0:
            return ApiKeyNotFound(
                f"endpoint {name!r} was created, but no API key was found in the output of `flexai "
                f"inference serve` (expected a line 'API Key: <key>'). {paste}"
            )
        return ApiKeyNotFound(
            f"`{shown}` {how} and printed no API key that could be recognised. The endpoint may or may "
            f"not exist: check with deployment.inspect({name!r}). {paste} The CLI said (anything "
            f"key-like masked):\n{self._mask_output(output)}"
        )

    def inspect(self, name: str) -> EndpointInfo:
        """``flexai inference inspect NAME -j``: status from runtime.status, URL from config.endpointUrl."""
        store.check_name(name)
        result = self.run("inference", "inspect", name, "-j")
        try:
            data = parse_json_output(result.stdout)
        except ValueError:
            raise CommandFailed(
                f"`flexai inference inspect {name} -j` did not print JSON; it printed:\n"
                f"{self._mask(result.stdout[:500])}",
                command=self.commands[-1],
                output=self._mask(result.stdout),
            ) from None
        status = dig(data, "runtime", "status")
        url = dig(data, "config", "endpointUrl")
        url = url.strip().rstrip("/").removesuffix("/v1") if isinstance(url, str) and url.strip() else None
        return EndpointInfo(
            name=name,
            status=str(status).strip().lower() if status else "unknown",
            url=url,
            target=self.target,
            raw=mask_json(data, self._secrets),
        )

    def endpoint(self, name: str) -> Endpoint:
        """The saved endpoint; its URL is looked up with ``inspect`` when it was not known yet."""
        found = super().endpoint(name)
        if found.target == self.target and not found.url:
            url = self.inspect(name).url
            if url:
                found = store.endpoint_from_record(store.save_record(self.target, name, url=url))
        return found

    def _ready_endpoint(self, name: str, info: EndpointInfo) -> Endpoint:
        record = store.load_record(self.target, name)
        if not record or not record.get("api_key"):
            raise self._key_missing_for_ready(name, info.url)
        record = store.save_record(self.target, name, url=info.url)
        return store.endpoint_from_record(record)

    def _key_missing_for_ready(self, name: str, url: str | None) -> ApiKeyNotFound:
        return ApiKeyNotFound(
            f"endpoint {name!r} is running at {url}, but its API key is not saved here. Paste it with\n"
            f"    flexaudio_helpers.deploy.remember_endpoint({name!r}, api_key='...', url={url!r})\n"
            f"or set {store.URL_ENV} and {store.KEY_ENV} in .env."
        )

    def logs(self, name: str) -> str:
        """``flexai inference logs NAME`` (what it printed within 30 s, should it keep following)."""
        store.check_name(name)
        try:
            result = self.run("inference", "logs", name, timeout=LOGS_TIMEOUT)
        except CommandFailed as exc:
            if exc.returncode is None and exc.output:  # timed out while following: keep what came
                return exc.output
            raise
        return self._mask(strip_ansi(result.stdout + (result.stderr or "")))

    # -- stopping paying: stop, scale to zero, delete ---------------------------------------

    def stop(self, name: str) -> None:
        """``flexai inference stop NAME`` (when this CLI has it), checked with ``inspect``; key kept."""
        store.check_name(name)
        self._require_verb("stop", name)
        self._finish("stop", name, STOPPED_STATUSES)
        print(f"Endpoint {name} is stopped; its API key stays saved.")

    def scale_to_zero(self, name: str) -> None:
        """``flexai inference scale NAME --min-replicas 0 --max-replicas 1``: keep it, pay only when used.

        The documented way to stop paying for an idle endpoint without deleting it: with no
        requests it does not run; the next request starts it again (slowly: the model reloads).
        """
        store.check_name(name)
        self._require_verb("scale", name)
        self._show(self.run("inference", "scale", name, "--min-replicas", "0", "--max-replicas", "1").stdout)
        print(
            f"Endpoint {name} scaled to zero: it does not run while no requests come, and its API key "
            f"stays saved. To remove it for good: deployment.delete({name!r})."
        )

    def delete(self, name: str) -> None:
        """``flexai inference delete NAME``, then check that it is gone; only then forget the saved key.

        A confirmation flag (--yes/--force) is passed when ``--help`` lists one. If the endpoint is
        still there after `gone_timeout` s, `EndpointStillRunning` says so and the key stays saved.
        """
        store.check_name(name)
        self._require_verb("delete", name)
        status = self._finish("delete", name, GONE_STATUSES)
        forgotten = store.remove_record(self.target, name)
        print(
            f"Endpoint {name} is {'deleted' if status == GONE else status}"
            + ("; its saved API key is forgotten." if forgotten else ".")
        )

    def _finish(self, verb: str, name: str, accepted: tuple[str, ...]) -> str:
        """Run ``flexai inference VERB NAME`` and poll until it is gone or in an `accepted` status."""
        result = self.run("inference", verb, *self._skip_prompt_flag(verb), name, combine=True, check=False)
        self._show(result.stdout)
        already_gone = NOT_FOUND_WORDS.search(result.stdout or "")
        if result.returncode != 0 and not already_gone:
            failure = self._failure(self.commands[-1], result)
            if isinstance(failure, CommandFailed):
                failure = CommandFailed(
                    f"{failure}\nSo endpoint {name!r} may still be running and billed. "
                    + self._advice(verb, name),
                    command=failure.command,
                    returncode=failure.returncode,
                    output=failure.output,
                )
            raise failure
        started = time.monotonic()
        delay = self.poll_interval
        while True:
            status = self._state(name)
            if status == GONE or status in accepted:
                return status
            elapsed = time.monotonic() - started
            if elapsed >= self.gone_timeout:
                raise EndpointStillRunning(self._still_there(verb, name, status or "unknown", elapsed))
            time.sleep(min(delay, self.gone_timeout - elapsed))
            delay = min(delay * 2, 30.0)

    def _state(self, name: str) -> str | None:
        """``GONE``, the endpoint's status, or None when neither ``inspect`` nor ``list`` could tell."""
        result = self.run("inference", "inspect", name, "-j", combine=True, check=False, timeout=60)
        if result.returncode == 0:
            try:
                status = dig(parse_json_output(result.stdout or ""), "runtime", "status")
            except ValueError:
                status = None
            return str(status).strip().lower() if status else "unknown"
        if NOT_FOUND_WORDS.search(result.stdout or ""):
            return GONE
        listed = self.run("inference", "list", combine=True, check=False, timeout=60)
        if listed.returncode == 0 and table_lookup(listed.stdout or "", name) == "no":
            return GONE
        return None

    def _still_there(self, verb: str, name: str, status: str, elapsed: float) -> str:
        return (
            f"endpoint {name!r} is still there {format_elapsed(elapsed)} after `flexai inference {verb} "
            f"{name}` exited 0 (status: {status}): it is still running and still billed. "
            + self._advice(verb, name)
        )

    def _advice(self, verb: str, name: str) -> str:
        path = store.record_path(self.target, name)
        kept = f"\nIts API key stays saved in {path}." if path.exists() else ""
        return (
            f"{verb.capitalize()} it in {CONSOLE}, or run this in a terminal and answer its prompt:\n"
            f"    flexai inference {verb} {name}\n"
            f"To stop paying but keep it: {scale_command(name)}{kept}"
        )

    def _show(self, output: str | None) -> None:
        if self.echo and output and output.strip():
            print(self._mask(strip_ansi(output)).rstrip())


def scale_command(name: str) -> str:
    """The documented command that stops an endpoint running while idle, keeping it."""
    return f"flexai inference scale {name} --min-replicas 0 --max-replicas 1"


def _read_all(stream: Any, chunks: list[bytes]) -> None:
    """Append everything `stream` yields to `chunks` (a reader thread: the process may never exit)."""
    try:
        while chunk := os.read(stream.fileno(), 65536):
            chunks.append(chunk)
    except (OSError, ValueError):  # the stream was closed under us: what came is kept
        pass
