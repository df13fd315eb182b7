"""Running the ``flexai`` CLI: find it, run a command from an argument list, show it masked, and
turn its failures into clear errors.

Every command runs from an argument list (never a shell) and is printed first as ``$ flexai ...``
with secrets masked, so a notebook shows the exact CLI steps of the tutorial. Secret values travel
on stdin, never on the command line; every other command gets a closed stdin, so a confirmation
prompt reads end-of-file instead of hanging.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CLINotFound, CommandFailed, DeploymentError, NotLoggedIn, UnsupportedCommand
from ..redact import find_api_key, mask_text, mask_tokens, strip_ansi
from .flexai_output import AUTH_FAILURE_WORDS, LOGGED_OUT_WORDS, non_interactive_flag, subcommands

INSTALL_COMMAND = "curl -fsSL https://cli.flex.ai/install.sh | sh"
LOGIN_COMMAND = "flexai auth login"
# Where the official installer puts the binary (its scripts add the folder to PATH themselves).
INSTALLED_PATH = Path("~/.flexai/bin/flexai")
CONSOLE = "the FlexAI console"
COMMAND_TIMEOUT = 300.0


def find_cli() -> str | None:
    """The path of the ``flexai`` executable: on PATH, else where the installer puts it."""
    found = shutil.which("flexai")
    if found:
        return found
    installed = INSTALLED_PATH.expanduser()
    return str(installed) if installed.is_file() and os.access(installed, os.X_OK) else None


def scale_command(name: str) -> str:
    """The documented command that stops an endpoint running while idle, keeping it."""
    return f"flexai inference scale {name} --min-replicas 0 --max-replicas 1"


class FlexAICLI:
    """One ``flexai`` executable: runs its commands, keeps their masked transcript, knows its subcommands."""

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
        #: Values masked wherever output is shown (secret values, the endpoint's API key).
        self.secrets: set[str] = set()
        self._verbs: dict[str, set[str]] = {}

    # -- showing ----------------------------------------------------------------------------

    def mask(self, text: str) -> str:
        """`text` with every known secret masked."""
        return mask_text(text, self.secrets)

    def mask_output(self, output: str) -> str:
        """Output fit to show: known secrets and anything key-shaped masked."""
        return mask_tokens(self.mask(strip_ansi(output))).strip() or "(nothing)"

    def show(self, output: str | None) -> None:
        """Print a command's output (masked) when echoing."""
        if self.echo and output and output.strip():
            print(self.mask(strip_ansi(output)).rstrip())

    def announce(self, arguments: tuple[str, ...] | list[str], note: str = "") -> str:
        """Record ``flexai <arguments>`` (masked) in the transcript, print it when echoing, return it."""
        shown = self.mask(shlex.join(["flexai", *arguments])) + (f"  # {note}" if note else "")
        self.commands.append(shown)
        if self.echo:
            print(f"$ {shown}", flush=True)
        return shown

    # -- running ----------------------------------------------------------------------------

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
        shown = self.announce(arguments, note)
        try:
            result = subprocess.run(
                [self.executable, *arguments],
                input=stdin,
                stdin=subprocess.DEVNULL if stdin is None else None,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if combine else subprocess.PIPE,
                text=True,
                timeout=timeout,
                env=_environment(),
            )
        except FileNotFoundError:
            raise self._gone() from None
        except subprocess.TimeoutExpired as exc:
            raise CommandFailed(
                f"`{shown}` did not finish within {timeout:.0f} s", command=shown, output=self._partial(exc)
            ) from None
        if check and result.returncode != 0:
            raise self.failure(shown, result)
        return result

    def stream_until_key(
        self, arguments: list[str], on_key: Callable[[str], None], *, timeout: float, grace: float
    ) -> tuple[int | None, str, str | None]:
        """Run ``flexai <arguments>`` (already announced), calling `on_key` the moment an API key shows.

        Returns (exit code, or None when we stopped it; the whole output, stdout and stderr; key).
        The command is stopped `grace` s after the key appears, or at `timeout`.
        """
        try:
            process = subprocess.Popen(
                [self.executable, *arguments],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # the key may come on either stream
                env=_environment(),
            )
        except FileNotFoundError:
            raise self._gone() from None
        chunks: list[bytes] = []
        reader = threading.Thread(target=_read_all, args=(process.stdout, chunks), daemon=True)
        reader.start()
        started = time.monotonic()
        key, key_seen = None, 0.0

        def found(new_key: str | None) -> None:
            nonlocal key, key_seen
            if new_key:
                key, key_seen = new_key, time.monotonic()
                self.secrets.add(new_key)
                on_key(new_key)

        while True:
            finished = process.poll() is not None
            now = time.monotonic()
            stopped = not finished and (now - started >= timeout or (key and now - key_seen >= grace))
            if stopped:
                _end(process)
            if finished or stopped:
                reader.join(timeout=10)
                process.stdout.close()
            text = b"".join(chunks).decode(errors="replace")
            if key is None:
                # While it runs, only whole lines (a key cut mid-line must not be saved half) and
                # only labelled keys: an unlabelled UUID counts only once the command has succeeded.
                whole_lines = text if finished or stopped else text[: text.rfind("\n") + 1]
                found(find_api_key(whole_lines, lone_uuid=finished and process.returncode == 0))
            if finished or stopped:
                return (None if stopped else process.returncode), text, key
            time.sleep(0.05)

    def _gone(self) -> CLINotFound:
        return CLINotFound(f"the flexai CLI is gone from {self.executable}; install it: {INSTALL_COMMAND}")

    def _partial(self, exc: subprocess.TimeoutExpired) -> str:
        output = exc.stdout or b""
        return self.mask(output.decode(errors="replace") if isinstance(output, bytes) else output)

    def failure(self, shown: str, result: subprocess.CompletedProcess[str]) -> DeploymentError:
        """The error for a failed command: `NotLoggedIn` when it says so, else `CommandFailed`."""
        output = self.mask(strip_ansi((result.stdout or "") + (result.stderr or ""))).strip()
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
        answer = self.mask_output(result.stdout or "")
        said = " ".join(answer.split())[:200]
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

    def require_verb(self, verb: str, name: str = "NAME") -> None:
        """`UnsupportedCommand`, with what to do instead, unless ``flexai inference VERB`` exists."""
        # Checked first because cobra prints help and exits 0 on an unknown subcommand.
        verbs = self.subcommands_of("inference")
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

    def skip_prompt_flag(self, verb: str) -> list[str]:
        """``[--yes]`` (or --force, -y, -f) when ``flexai inference VERB --help`` lists it, else []."""
        result = self.run("inference", verb, "--help", combine=True, check=False, timeout=60)
        flag = non_interactive_flag(result.stdout or "") if result.returncode == 0 else None
        return [flag] if flag else []


def _environment() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1"}


def _end(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s, and collect it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read_all(stream: Any, chunks: list[bytes]) -> None:
    """Append everything `stream` yields to `chunks` (a reader thread: the process may never exit)."""
    try:
        while chunk := os.read(stream.fileno(), 65536):
            chunks.append(chunk)
    except (OSError, ValueError):  # the stream was closed under us: what came is kept
        pass
