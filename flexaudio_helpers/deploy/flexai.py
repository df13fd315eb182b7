"""The FlexAI target: the deployment verbs (secrets, serve, inspect, logs, stop, scale, delete) as
``flexai`` commands, each checked afterwards rather than trusted on its exit code.

Commands run through `flexai_cli.FlexAICLI` and their output is read by `flexai_output`. The
endpoint's API key, printed once by ``serve``, is saved (mode 0600) the moment it appears in the
output, even when ``serve`` then fails; it is never printed. Every surprise ends in an error that
says what to do.
"""

from __future__ import annotations

from ..errors import (
    ApiKeyNotFound,
    CommandFailed,
    DeploymentError,
    InvalidParameters,
    NotLoggedIn,
)
from ..params import TASK
from ..protocol import INFERENCE_API_KEY_ENV, INFERENCE_URL_ENV
from ..redact import mask_json, strip_ansi
from ..state import state_dir, write_private
from . import store
from .base import Deployment
from .endpoint_info import GONE, GONE_STATUSES, STOPPED_STATUSES, Endpoint, EndpointInfo
from .flexai_checks import endpoint_state, run_and_confirm
from .flexai_cli import LOGIN_COMMAND, FlexAICLI
from .flexai_output import (
    ALREADY_EXISTS_WORDS,
    AUTH_FAILURE_WORDS,
    NOT_FOUND_WORDS,
    endpoint_status,
    endpoint_url,
    parse_json_output,
    table_lookup,
)

LOGS_TIMEOUT = 30.0


class FlexAIDeployment(Deployment):
    """Serve on FlexAI's cloud through the ``flexai`` CLI (installed and logged in).

    The waits are bounded by the class attributes below (seconds); tests shorten them.
    """

    target = store.FLEXAI
    serve_verb = "deploy"
    poll_interval = 10.0  # the official scripts poll every 10 s
    confirm_timeout = 900.0  # a fresh endpoint may still be downloading 5 GB of weights
    #: How long `serve` may take to create the endpoint (a slow create takes many minutes).
    serve_timeout = 900.0
    #: How long `serve` may keep running after printing the key (some CLIs follow the logs).
    serve_exit_grace = 30.0
    #: How long `delete`/`stop` are checked for the endpoint to go (or stop) before giving up.
    gone_timeout = 120.0

    def __init__(self, executable: str | None = None, *, echo: bool = True) -> None:
        #: The ``flexai`` executable that runs every command (`CLINotFound` when there is none).
        self.cli = FlexAICLI(executable, echo=echo)

    @property
    def commands(self) -> list[str]:
        """Every command run so far, as shown (secrets masked): the notebook's CLI transcript."""
        return self.cli.commands

    # -- secrets ----------------------------------------------------------------------------

    def create_secret(self, name: str, value: str) -> None:
        """``flexai secret create NAME`` with the value on stdin; kept as is when it exists."""
        store.check_name(name, "secret name")
        value = (value or "").strip()
        if not value:
            raise InvalidParameters("the secret value is empty", field="value", allowed="a non-empty token")
        self.cli.secrets.add(value)
        if self.secret_exists(name):
            print(
                f"Secret {name} already exists on FlexAI: keeping it (the CLI has no `secret update`; "
                "create the new token under another name to change it)."
            )
            return
        result = self.cli.run("secret", "create", name, stdin=value, combine=True, note="value sent on stdin")
        self.cli.show(result.stdout)

    def secret_exists(self, name: str) -> bool:
        """True when ``flexai secret inspect NAME`` succeeds, else when ``flexai secret list`` shows it.

        ``inspect`` is used only when ``flexai secret --help`` lists it (cobra would exit 0 on a
        missing one). A list cell cut short (``MY_HF_TO…``) counts as there: nothing is created twice.
        """
        store.check_name(name, "secret name")
        if "inspect" in self.cli.subcommands_of("secret"):
            result = self.cli.run("secret", "inspect", name, combine=True, check=False, timeout=60)
            if result.returncode == 0:
                return True
            if AUTH_FAILURE_WORDS.search(self.cli.mask(result.stdout or "")):
                raise self.cli.failure(self.cli.commands[-1], result)
            if NOT_FOUND_WORDS.search(result.stdout or ""):
                return False
            # Any other failure: the list decides.
        found = table_lookup(self.cli.run("secret", "list").stdout, name)
        if found == "maybe":
            print(f"`flexai secret list` shows a name cut short that may be {name}: counting it as there.")
        return found != "no"

    # -- endpoints --------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        """True when ``flexai inference list`` shows `name` (for a cell cut short, ``inspect`` decides)."""
        found = table_lookup(self.cli.run("inference", "list").stdout, name)
        if found == "maybe":
            return endpoint_state(self.cli, name) not in (GONE, None)
        return found == "yes"

    def _serve(self, name: str, model: str, hf_token_secret: str | None) -> Endpoint:
        """``flexai inference serve NAME --runtime flexserve --hf-token-secret S -- --task text-to-audio
        --model M``.

        Returns as soon as the endpoint is created (its URL comes later: `wait_until_ready`).
        An endpoint of that name that already exists is reused when its API key is saved here.
        The key is saved the moment it appears in the output, whatever happens next.
        """
        if hf_token_secret and not self.secret_exists(hf_token_secret):  # which checks the name
            raise DeploymentError(
                f"no FlexAI secret named {hf_token_secret!r}: create it first with "
                f"deployment.create_secret({hf_token_secret!r}, token)"
            )
        if self.exists(name):
            return self._reuse(name)
        arguments = ["inference", "serve", name, "--runtime", "flexserve"]
        if hf_token_secret:
            arguments += ["--hf-token-secret", hf_token_secret]
        arguments += ["--", "--task", TASK, "--model", model]
        shown = self.cli.announce(arguments)
        returncode, output, key = self.cli.stream_until_key(
            arguments,
            # Saved before anything else can fail: FlexAI shows the key only this once.
            lambda key: store.save_record(self.target, name, api_key=key, model=model, task=TASK, url=None),
            timeout=self.serve_timeout,
            grace=self.serve_exit_grace,
        )
        if key is None and returncode not in (0, None) and AUTH_FAILURE_WORDS.search(output):
            raise NotLoggedIn(
                f"`{shown}` failed because the flexai CLI is not logged in. Run `{LOGIN_COMMAND}` in a "
                f"terminal, then try again. The CLI said:\n{self.cli.mask_output(output)}"
            )
        if key is None and returncode != 0 and ALREADY_EXISTS_WORDS.search(output):
            print(f"`flexai inference serve` says {name} already exists (the list did not show it).")
            return self._reuse(name)
        if key is None:
            raise _key_not_found(self.cli, name, output, shown, returncode, self.serve_timeout)
        if self.cli.echo:
            print(self.cli.mask_output(output))
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
                f"deployment.inspect({name!r}). The CLI said:\n{self.cli.mask_output(output)}",
                command=shown,
                returncode=returncode,
                output=self.cli.mask_output(output),
            )
        print(f"API key captured and saved in {saved_in} (mode 0600, not shown).")
        return store.find_endpoint(name, self.target)

    def _reuse(self, name: str) -> Endpoint:
        record = store.load_record(self.target, name)
        if not record or not record.get("api_key"):
            raise _key_not_saved(name)
        print(f"Endpoint {name} already exists on FlexAI: reusing it (API key from the saved state).")
        return store.endpoint_from_record(record)

    def inspect(self, name: str) -> EndpointInfo:
        """``flexai inference inspect NAME -j``: status from runtime.status, URL from config.endpointUrl."""
        store.check_name(name)
        result = self.cli.run("inference", "inspect", name, "-j")
        try:
            data = parse_json_output(result.stdout)
        except ValueError:
            raise CommandFailed(
                f"`flexai inference inspect {name} -j` did not print JSON; it printed:\n"
                f"{self.cli.mask(result.stdout[:500])}",
                command=self.cli.commands[-1],
                output=self.cli.mask(result.stdout),
            ) from None
        return EndpointInfo(
            name=name,
            status=endpoint_status(data),
            url=endpoint_url(data),
            target=self.target,
            raw=mask_json(data, self.cli.secrets),
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
            raise _key_missing_for_ready(name, info.url)
        record = store.save_record(self.target, name, url=info.url)
        return store.endpoint_from_record(record)

    def logs(self, name: str) -> str:
        """``flexai inference logs NAME`` (what it printed within 30 s, should it keep following)."""
        store.check_name(name)
        try:
            result = self.cli.run("inference", "logs", name, timeout=LOGS_TIMEOUT)
        except CommandFailed as exc:
            if exc.returncode is None and exc.output:  # timed out while following: keep what came
                return exc.output
            raise
        return self.cli.mask(strip_ansi(result.stdout + (result.stderr or "")))

    # -- stopping paying: stop, scale to zero, delete ---------------------------------------

    def stop(self, name: str) -> None:
        """``flexai inference stop NAME`` (when this CLI has it), checked with ``inspect``; key kept."""
        store.check_name(name)
        self.cli.require_verb("stop", name)
        run_and_confirm(
            self.cli, "stop", name, STOPPED_STATUSES, interval=self.poll_interval, timeout=self.gone_timeout
        )
        print(f"Endpoint {name} is stopped; its API key stays saved.")

    def scale_to_zero(self, name: str) -> None:
        """``flexai inference scale NAME --min-replicas 0 --max-replicas 1``: keep it, pay only when used.

        The documented way to stop paying for an idle endpoint without deleting it: with no
        requests it does not run; the next request starts it again (slowly: the model reloads).
        """
        store.check_name(name)
        self.cli.require_verb("scale", name)
        scaled = self.cli.run("inference", "scale", name, "--min-replicas", "0", "--max-replicas", "1")
        self.cli.show(scaled.stdout)
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
        self.cli.require_verb("delete", name)
        status = run_and_confirm(
            self.cli, "delete", name, GONE_STATUSES, interval=self.poll_interval, timeout=self.gone_timeout
        )
        forgotten = store.remove_record(self.target, name)
        print(
            f"Endpoint {name} is {'deleted' if status == GONE else status}"
            + ("; its saved API key is forgotten." if forgotten else ".")
        )


# -- what to tell the user when a step goes wrong --------------------------------------------


def _key_not_saved(name: str) -> ApiKeyNotFound:
    return ApiKeyNotFound(
        f"endpoint {name!r} already exists on FlexAI, but its API key is not saved here "
        "(FlexAI prints it only when the endpoint is created). Paste it with\n"
        f"    flexaudio_helpers.deploy.remember_endpoint({name!r}, api_key='...')\n"
        f"or set {INFERENCE_API_KEY_ENV} (and {INFERENCE_URL_ENV}) in .env; "
        "or delete the endpoint and serve again."
    )


def _key_not_found(
    cli: FlexAICLI, name: str, output: str, shown: str, returncode: int | None, serve_timeout: float
) -> DeploymentError:
    # The key may be in there somewhere we could not parse: keep it private, never print it,
    # and show nothing key-shaped from it.
    saved = write_private(state_dir() / f"flexai-serve-{name}.out", output)
    how = {0: "exited 0", None: f"did not finish within {serve_timeout:.0f} s"}.get(
        returncode, f"failed (exit {returncode})"
    )
    paste = (
        f"The whole output is saved, unshown, in {saved} (mode 0600). If it holds the key, paste "
        f"it with\n    flexaudio_helpers.deploy.remember_endpoint({name!r}, api_key='...')\n"
        f"or set {INFERENCE_API_KEY_ENV} in .env."
    )
    if returncode == 0:
        return ApiKeyNotFound(
            f"endpoint {name!r} was created, but no API key was found in the output of `flexai "
            f"inference serve` (expected a line 'API Key: <key>'). {paste}"
        )
    return ApiKeyNotFound(
        f"`{shown}` {how} and printed no API key that could be recognised. The endpoint may or may "
        f"not exist: check with deployment.inspect({name!r}). {paste} The CLI said (anything "
        f"key-like masked):\n{cli.mask_output(output)}"
    )


def _key_missing_for_ready(name: str, url: str | None) -> ApiKeyNotFound:
    return ApiKeyNotFound(
        f"endpoint {name!r} is running at {url}, but its API key is not saved here. Paste it with\n"
        f"    flexaudio_helpers.deploy.remember_endpoint({name!r}, api_key='...', url={url!r})\n"
        f"or set {INFERENCE_URL_ENV} and {INFERENCE_API_KEY_ENV} in .env."
    )
