"""Checking afterwards what ``flexai inference stop``/``delete`` did: where an endpoint is now
(``inspect``, then ``list``), and polling until the command took effect, since exit 0 proves nothing."""

from __future__ import annotations

import time

from ..errors import CommandFailed, EndpointStillRunning
from . import store
from .endpoint_info import GONE
from .flexai_cli import CONSOLE, FlexAICLI, scale_command
from .flexai_output import NOT_FOUND_WORDS, endpoint_status, parse_json_output, table_lookup
from .readiness import format_elapsed


def run_and_confirm(
    cli: FlexAICLI, verb: str, name: str, accepted: tuple[str, ...], *, interval: float, timeout: float
) -> str:
    """Run ``flexai inference VERB NAME`` and poll until it is gone or in an `accepted` status.

    Polls every `interval` s, doubling up to 30 s; `EndpointStillRunning` after `timeout` s.
    """
    skip_prompt = cli.skip_prompt_flag(verb)
    result = cli.run("inference", verb, *skip_prompt, name, combine=True, check=False)
    cli.show(result.stdout)
    already_gone = NOT_FOUND_WORDS.search(result.stdout or "")
    if result.returncode != 0 and not already_gone:
        failure = cli.failure(cli.commands[-1], result)
        if isinstance(failure, CommandFailed):
            failure = CommandFailed(
                f"{failure}\nSo endpoint {name!r} may still be running and billed. " + advice(verb, name),
                command=failure.command,
                returncode=failure.returncode,
                output=failure.output,
            )
        raise failure
    started = time.monotonic()
    delay = interval
    while True:
        status = endpoint_state(cli, name)
        if status == GONE or status in accepted:
            return status
        elapsed = time.monotonic() - started
        if elapsed >= timeout:
            raise EndpointStillRunning(still_there(verb, name, status or "unknown", elapsed))
        time.sleep(min(delay, timeout - elapsed))
        delay = min(delay * 2, 30.0)


def endpoint_state(cli: FlexAICLI, name: str) -> str | None:
    """``GONE``, the endpoint's status, or None when neither ``inspect`` nor ``list`` could tell."""
    result = cli.run("inference", "inspect", name, "-j", combine=True, check=False, timeout=60)
    if result.returncode == 0:
        try:
            return endpoint_status(parse_json_output(result.stdout or ""))
        except ValueError:
            return "unknown"
    if NOT_FOUND_WORDS.search(result.stdout or ""):
        return GONE
    listed = cli.run("inference", "list", combine=True, check=False, timeout=60)
    if listed.returncode == 0 and table_lookup(listed.stdout or "", name) == "no":
        return GONE
    return None


def still_there(verb: str, name: str, status: str, elapsed: float) -> str:
    """The message for an endpoint still there after `verb` exited 0, with what to do."""
    return (
        f"endpoint {name!r} is still there {format_elapsed(elapsed)} after `flexai inference {verb} "
        f"{name}` exited 0 (status: {status}): it is still running and still billed. " + advice(verb, name)
    )


def advice(verb: str, name: str) -> str:
    """How to `verb` the endpoint by hand, or stop paying for it, and where its key stays saved."""
    path = store.record_path(store.FLEXAI, name)
    kept = f"\nIts API key stays saved in {path}." if path.exists() else ""
    return (
        f"{verb.capitalize()} it in {CONSOLE}, or run this in a terminal and answer its prompt:\n"
        f"    flexai inference {verb} {name}\n"
        f"To stop paying but keep it: {scale_command(name)}{kept}"
    )
