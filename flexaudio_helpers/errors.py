"""The typed errors every part of flexaudio raises.

One hierarchy for the whole package, like huggingface_hub's: catch `FlexAudioError` for
anything of ours, or a subclass for one failure. Messages never contain secrets.
"""

from __future__ import annotations

from typing import Any


class FlexAudioError(Exception):
    """Base class of every error raised by flexaudio_helpers."""


class HTTPError(FlexAudioError):
    """An error an endpoint may answer with.

    `status_code` is the HTTP status of the answer and `server_message` what the server said
    (secrets masked); both are None when the error was found before any answer (e.g. a request
    refused locally, or a connection that failed).
    """

    status_code: int | None
    server_message: str | None

    def __init__(self, message: str, *, status_code: int | None = None, server_message: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message


class InvalidParameters(HTTPError, ValueError):
    """A generation request broke the shared parameter model (locally, or HTTP 400/413/422).

    `field` names the first offending parameter (dotted, e.g. ``parameters.seed``),
    `value` is what was given and `allowed` says what would have been accepted.
    `problems` lists every problem found, as ``(field, message)`` pairs.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        allowed: str | None = None,
        problems: list[tuple[str, str]] | None = None,
        status_code: int | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, server_message=server_message)
        self.field = field
        self.value = value
        self.allowed = allowed
        self.problems = problems or ([(field, message)] if field else [])


class UnsupportedParameter(InvalidParameters):
    """A parameter this endpoint's API does not take (e.g. ``init_audio`` beyond our local
    endpoint), refused before anything was sent."""


class AuthenticationError(HTTPError):
    """The endpoint refused the API key (HTTP 401/403), or the key cannot be sent."""


class EndpointNotFound(HTTPError):
    """Nothing answers at this URL and route (HTTP 404/405), or no endpoint of that name is saved."""


class EndpointUnavailable(HTTPError):
    """The endpoint stayed busy or unreachable after the retries ran out.

    `status_code` is the last answer's status (429, 502, 503, 504), or None when it never answered.
    """


class GenerationTimeout(EndpointUnavailable, TimeoutError):
    """No answer within the client's read timeout (not retried: the endpoint may still be working)."""


class InvalidResponse(FlexAudioError):
    """The endpoint's answer breaks the protocol: a bad header, an oversized or endless body."""


class ResponseTooLarge(InvalidResponse):
    """The answer (or the audio in it, once decoded) is over the client's size limit."""


class InvalidAudioResponse(InvalidResponse):
    """The endpoint answered, but the body is not (complete) audio."""


class InvalidAudioFile(FlexAudioError, ValueError):
    """A file is not audio we can read, would decode to more than allowed, or carries oversized metadata."""


class AnalysisError(FlexAudioError, ValueError):
    """The audio cannot be analysed (empty, not finite, shaped wrongly)."""


class EndpointNotConfigured(FlexAudioError, ValueError):
    """No usable endpoint URL: none given and no INFERENCE_URL (environment or .env), or not http(s)."""


class InputError(FlexAudioError, ValueError):
    """A command-line input (file, path, flag) of the ``flexaudio`` command is not usable; exit status 2."""


class GenerationFailed(HTTPError):
    """The endpoint answered with an error that retrying will not fix (HTTP 500, an unexpected status)."""


class QueueFull(FlexAudioError):
    """The server's generation queue has no room left; `retry_after` is a fair guess in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the generation queue is full; retry in about {retry_after} s")
        self.retry_after = retry_after


class UnsafeStateError(FlexAudioError):
    """A state folder, private file or ``.env`` could be read or changed by someone else (or is a
    symlink), or a ``.env`` value would pull in another variable (``${...}``)."""


class NonFiniteAudio(FlexAudioError, FloatingPointError):
    """The model gave NaN or infinite samples (half precision overflowed, or broken weights); the
    message says which precision ran and what to try."""


class SilentAudioWarning(UserWarning):
    """A generation gave a take whose every sample is below -60 dBFS: silence, not a sound."""


class ModelLoadError(FlexAudioError):
    """The local endpoint could not load the requested model."""


class DeploymentError(FlexAudioError):
    """A control-plane step (secret, serve, inspect, stop) failed, locally or on FlexAI."""


class CLINotFound(DeploymentError):
    """The ``flexai`` command is not installed (the message gives the install command)."""


class NotLoggedIn(DeploymentError):
    """The ``flexai`` CLI is installed but not logged in (run ``flexai auth login``)."""


class CommandFailed(DeploymentError):
    """A ``flexai`` command exited non-zero; `output` is what it printed, secrets masked."""

    def __init__(self, message: str, *, command: str = "", returncode: int | None = None, output: str = ""):
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.output = output


class UnsupportedCommand(DeploymentError):
    """This version of the ``flexai`` CLI has no such subcommand (e.g. ``inference delete``)."""


class ApiKeyNotFound(DeploymentError):
    """The endpoint's API key could not be found (the message says where to paste it)."""


class EndpointFailed(DeploymentError):
    """The endpoint reached a terminal state (failed, stopped...); `logs` holds its last log lines."""

    def __init__(self, message: str, *, status: str = "", logs: str = ""):
        super().__init__(message)
        self.status = status
        self.logs = logs


class DeploymentTimeout(DeploymentError, TimeoutError):
    """The endpoint was not ready before the timeout."""


class EndpointStillRunning(DeploymentError):
    """``delete``/``stop`` exited 0 but the endpoint is still there (and still billed)."""
