"""Deployments: serve Stable Audio Open on FlexAI or on this machine, with the same verbs.

    from flexaudio_helpers.deploy import connect
    deployment = connect()            # FlexAI when its CLI is installed and logged in, else local
    print(deployment.reason)
    deployment.serve("stable-audio-open", hf_token_secret="MY_HF_TOKEN")
    endpoint = deployment.wait_until_ready("stable-audio-open")

A later notebook (or the ``flexaudio`` command) finds the endpoint again with
``find_or_serve(deployment)`` or ``endpoint("stable-audio-open")``: ``INFERENCE_URL`` first, then
the saved endpoint. The last notebook stops it with ``clean_up(deployment, "stable-audio-open")``.

- `base`: the `Deployment` interface (and the `serve` preamble); `endpoint_info`: `Endpoint`,
  `EndpointInfo` and the endpoint-status vocabulary.
- `flexai`: the FlexAI verbs; `flexai_cli`: running the ``flexai`` CLI; `flexai_output`: reading it.
- `local`: the local verbs and model choice; `server_process`: the server process (start detached,
  /health, terminate, free port, registry).
- `cleanup`: `clean_up`, stopping what the chosen target runs plus a recorded local server.
- `store`: saved endpoints (mode 0600), the INFERENCE_URL/INFERENCE_API_KEY override, and the
  ``inference.env`` file for shells.
- `readiness`: polling until running, then one real request (masking secrets is `..redact`).
"""

from __future__ import annotations

from ..errors import EndpointNotFound, EndpointUnavailable, FlexAudioError, InvalidParameters
from ..settings import setting
from .base import Deployment
from .cleanup import clean_up
from .endpoint_info import Endpoint, EndpointInfo
from .flexai import FlexAIDeployment
from .flexai_cli import INSTALL_COMMAND, LOGIN_COMMAND, find_cli
from .local import MODEL_ENV, OFFLINE, LocalDeployment
from .store import DEFAULT_NAME, TARGETS, remember_endpoint, write_env_file
from .store import find_endpoint as endpoint

TARGET_ENV = "FLEXAUDIO_TARGET"
TARGET_CHOICES = ("auto", *TARGETS, OFFLINE)

__all__ = [
    "MODEL_ENV",
    "TARGET_ENV",
    "Deployment",
    "Endpoint",
    "EndpointInfo",
    "FlexAIDeployment",
    "LocalDeployment",
    "clean_up",
    "connect",
    "endpoint",
    "find_or_serve",
    "remember_endpoint",
    "write_env_file",
]


def connect(target: str = "auto", *, echo: bool = True) -> Deployment:
    """The deployment to use, with `.reason` saying why it was chosen.

    ``FLEXAUDIO_TARGET=flexai|local|offline`` wins over everything (even `target`); else `target` when
    it is not ``"auto"``; else FlexAI when the ``flexai`` CLI is installed and logged in; else
    this machine. Asking for FlexAI explicitly fails clearly when the CLI is missing or logged out.
    """
    chosen = (setting(TARGET_ENV) or "").lower()
    source = f"{TARGET_ENV}={chosen}"
    if not chosen or chosen == "auto":
        chosen, source = target.strip().lower(), f"connect(target={target!r})"
    if chosen not in TARGET_CHOICES:
        raise InvalidParameters(
            f"{source}: target {chosen!r} is not one of {', '.join(TARGET_CHOICES)}",
            field=TARGET_ENV if source.startswith(TARGET_ENV) else "target",
            value=chosen,
            allowed=", ".join(TARGET_CHOICES),
        )
    if chosen == "flexai":
        flexai = FlexAIDeployment(echo=echo)
        flexai.reason = f"FlexAI, because {source} ({flexai.cli.ensure_logged_in()})."
        deployment: Deployment = flexai
    elif chosen == "local":
        deployment = LocalDeployment(echo=echo)
        deployment.reason = f"this machine, because {source}."
    elif chosen == "offline":
        deployment = LocalDeployment(model="offline", echo=echo)
        deployment.reason = f"this machine with the offline model (noise, no download), because {source}."
    else:
        deployment = _detect(echo)
    return deployment


def _detect(echo: bool) -> Deployment:
    if not find_cli():
        why = f"is not installed (to use FlexAI: {INSTALL_COMMAND}, then `{LOGIN_COMMAND}`)"
    else:
        flexai = FlexAIDeployment(echo=echo)
        logged_in, said = flexai.cli.logged_in()
        if logged_in:
            flexai.reason = f"FlexAI, because the flexai CLI is installed and logged in ({said})."
            return flexai
        why = f"is not logged in ({said}; run `{LOGIN_COMMAND}` for FlexAI)"
    local = LocalDeployment(echo=echo)
    local.reason = f"this machine, because the flexai CLI {why}."
    return local


def find_or_serve(
    deployment: Deployment, name: str = DEFAULT_NAME, hf_token_secret: str = "MY_HF_TOKEN"
) -> Endpoint:
    """The endpoint to use: ``INFERENCE_URL`` (environment or ``.env``), else the saved endpoint
    `name`; on this machine it is served now (and waited for) when it is not running.

    Raises `FlexAudioError` on FlexAI when no endpoint `name` is saved (notebook 02 serves it).
    """
    try:
        return deployment.endpoint(name)
    except (EndpointNotFound, EndpointUnavailable):
        if deployment.target != LocalDeployment.target:
            raise FlexAudioError(
                f"no endpoint {name!r} is saved for {deployment.target}: run 02_serve_endpoint.ipynb "
                "first, or set INFERENCE_URL and INFERENCE_API_KEY"
            ) from None
    print(f"No local endpoint {name!r} is running: serving it now, as notebook 02 does.")
    deployment.serve(name, hf_token_secret=hf_token_secret)
    return deployment.wait_until_ready(name)
