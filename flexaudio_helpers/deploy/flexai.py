"""The FlexAI target: a thin wrapper over the real ``flexai`` CLI.

Every command runs from an argument list (never a shell) and is printed first as
``$ flexai ...`` with secrets masked, so a notebook shows the exact CLI steps of the tutorial.
Secret values travel on stdin, never on the command line. The endpoint's API key, printed once
by ``serve``, is captured from its output and saved at once (mode 0600); it is never printed.

What the CLI prints is only partly documented (see the project's flexai-platform notes), so
parsing is tolerant and every surprise ends in an error that says what to do.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
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
from ..state import state_dir, write_private
from . import store
from .base import Deployment
from .endpoint import Endpoint, EndpointInfo
from .redact import find_api_key, mask_json, mask_text, strip_ansi

INSTALL_COMMAND = "curl -fsSL https://cli.flex.ai/install.sh | sh"
LOGIN_COMMAND = "flexai auth login"
# Where the official installer puts the binary (its scripts add the folder to PATH themselves).
INSTALLED_PATH = Path("~/.flexai/bin/flexai")
# `auth status` output format is undocumented: these words mean "not logged in".
LOGGED_OUT_WORDS = re.compile(
    r"(?i)not (logged|signed) in|logged out|unauthenticated|login required"
    r"|no (valid )?(access )?token|expired"
)
# A failing command whose output says this failed for want of a login.
AUTH_FAILURE_WORDS = re.compile(
    r"(?i)not (logged|signed) in|logged out|unauthenticated|login required|unauthori[sz]ed|\b401\b"
    r"|please (log|sign) ?in|flexai auth login|token (has )?expired"
)
COMMAND_TIMEOUT = 300.0
LOGS_TIMEOUT = 30.0


def find_cli() -> str | None:
    """The path of the ``flexai`` executable: on PATH, else where the installer puts it."""
    found = shutil.which("flexai")
    if found:
        return found
    installed = INSTALLED_PATH.expanduser()
    return str(installed) if installed.is_file() and os.access(installed, os.X_OK) else None


def table_has(text: str, name: str) -> bool:
    """True when `name` is a whole cell of a text table (``grep -q NAME``, without prefix matches)."""
    return any(name in re.split(r"[\s│|┃,]+", line) for line in strip_ansi(text).splitlines())


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
    """Serve on FlexAI's cloud through the ``flexai`` CLI (installed and logged in)."""

    target = "flexai"
    poll_interval = 10.0  # the official scripts poll every 10 s
    confirm_timeout = 900.0  # a fresh endpoint may still be downloading 5 GB of weights

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
        self._verbs: set[str] | None = None

    # -- running commands -------------------------------------------------------------------

    def _mask(self, text: str) -> str:
        return mask_text(text, self._secrets)

    def run(
        self,
        *arguments: str,
        stdin: str | None = None,
        combine: bool = False,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
        note: str = "",
    ) -> subprocess.CompletedProcess[str]:
        """Run ``flexai <arguments>``, showing the command first; non-zero exit raises when `check`."""
        shown = self._mask(shlex.join(["flexai", *arguments])) + (f"  # {note}" if note else "")
        self.commands.append(shown)
        if self.echo:
            print(f"$ {shown}", flush=True)
        try:
            result = subprocess.run(
                [self.executable, *arguments],
                input=stdin if stdin is not None else "",
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if combine else subprocess.PIPE,
                text=True,
                timeout=timeout,
                env={**os.environ, "NO_COLOR": "1"},
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

    def _partial(self, exc: subprocess.TimeoutExpired) -> str:
        output = exc.stdout or b""
        return self._mask(output.decode(errors="replace") if isinstance(output, bytes) else output)

    def _failure(self, shown: str, result: subprocess.CompletedProcess[str]) -> DeploymentError:
        output = self._mask(strip_ansi((result.stdout or "") + (result.stderr or ""))).strip()
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
        """Whether ``flexai auth status`` says we are logged in, and its (masked) answer."""
        result = self.run("auth", "status", combine=True, check=False, timeout=60)
        answer = self._mask(strip_ansi(result.stdout or "")).strip()
        return result.returncode == 0 and not LOGGED_OUT_WORDS.search(answer), answer

    def ensure_logged_in(self) -> None:
        """Raise `NotLoggedIn` unless the CLI reports a login."""
        ok, answer = self.logged_in()
        if not ok:
            raise NotLoggedIn(
                f"the flexai CLI is not logged in. Run `{LOGIN_COMMAND}` in a terminal, then try again. "
                f"`flexai auth status` said: {answer or '(nothing)'}"
            )

    def inference_verbs(self) -> set[str]:
        """The ``flexai inference`` subcommands this CLI version offers (read from its --help)."""
        if self._verbs is None:
            result = self.run("inference", "--help", combine=True, check=False, timeout=60)
            self._verbs = subcommands(result.stdout or "")
        return self._verbs

    def _require_verb(self, verb: str) -> None:
        verbs = self.inference_verbs()
        if verb not in verbs:
            raise UnsupportedCommand(
                f"this flexai CLI has no `flexai inference {verb}` subcommand "
                f"(it offers: {', '.join(sorted(verbs)) or 'none found in `flexai inference --help`'}). "
                f"Update the CLI ({INSTALL_COMMAND}) or {verb} the endpoint in the FlexAI console."
            )

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
        """True when ``flexai secret list`` shows `name` (as a whole cell)."""
        return table_has(self.run("secret", "list").stdout, store.check_name(name, "secret name"))

    # -- endpoints --------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        """True when ``flexai inference list`` shows endpoint `name`."""
        return table_has(self.run("inference", "list").stdout, name)

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
        result = self.run(*arguments, combine=True, check=False)
        output = result.stdout or ""
        key = find_api_key(output)
        if key:  # saved before anything else can fail: FlexAI shows it only this once
            self._secrets.add(key)
            store.save_record(self.target, name, api_key=key, model=model, task=task, url=None)
        if result.returncode != 0:
            raise self._failure(self.commands[-1], result)
        if not key:
            raise self._key_not_found(name, output)
        self._show(output)
        print(f"API key captured and saved in {store.record_path(self.target, name)} (mode 0600, not shown).")
        return store.find_endpoint(name, self.target)

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

    def _key_not_found(self, name: str, output: str) -> ApiKeyNotFound:
        # The key is in there somewhere we could not parse: keep it private, never print it.
        saved = write_private(state_dir() / f"flexai-serve-{name}.out", output)
        return ApiKeyNotFound(
            f"endpoint {name!r} was created, but no API key was found in the output of `flexai inference "
            f"serve` (expected a line 'API Key: <key>'). The output is saved, unshown, in {saved} "
            "(mode 0600). Find the key there and paste it with\n"
            f"    flexaudio_helpers.deploy.remember_endpoint({name!r}, api_key='...')\n"
            f"or set {store.KEY_ENV} in .env."
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

    def stop(self, name: str) -> None:
        """``flexai inference stop NAME`` (when this CLI has it). The saved key is kept."""
        self._require_verb("stop")
        self._show(self.run("inference", "stop", store.check_name(name)).stdout)

    def delete(self, name: str) -> None:
        """``flexai inference delete NAME`` (when this CLI has it), then forget the saved key."""
        self._require_verb("delete")
        self._show(self.run("inference", "delete", store.check_name(name)).stdout)
        store.remove_record(self.target, name)

    def _show(self, output: str | None) -> None:
        if self.echo and output and output.strip():
            print(self._mask(strip_ansi(output)).rstrip())
