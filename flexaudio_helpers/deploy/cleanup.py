"""The end of the tour: stop what the chosen target runs for an endpoint, plus a local server only
if one is recorded under the same name (notebook 06 may have started one whatever the target)."""

from __future__ import annotations

from ..errors import EndpointStillRunning, UnsupportedCommand
from . import server_process
from .base import Deployment
from .local import LocalDeployment


def clean_up(deployment: Deployment, name: str) -> list[str]:
    """Stop paying for endpoint `name`, then stop a recorded local server of that name.

    On `deployment`'s target the endpoint is deleted; a FlexAI CLI without ``delete`` scales it to
    zero instead. Every CLI step prints the command it runs. Problems that leave the endpoint
    running are printed, not raised, so the local server is still stopped. Returns what was done,
    one sentence each, and prints it.
    """
    done = [_remove(deployment, name)]
    local = deployment.target == LocalDeployment.target
    if not local and server_process.recorded(name) and LocalDeployment(echo=False).stop(name):
        done.append(f"Stopped the local server {name} too (started here, e.g. by notebook 06).")
    print("Clean-up:", *done, sep="\n- ")
    return done


def _remove(deployment: Deployment, name: str) -> str:
    """Delete `name` on the deployment's target (or scale it to zero); one sentence on what happened."""
    if deployment.target == LocalDeployment.target:
        stopped = deployment.stop(name)  # decided under its lock; also forgets a stale record
        return f"Stopped the local server {name}." if stopped else f"No local server {name} was running."
    try:
        deployment.delete(name)
    except UnsupportedCommand as error:  # no `delete` in this CLI: stop paying, keep the endpoint
        print(error)
        deployment.scale_to_zero(name)
        return f"Scaled {name} to zero on FlexAI (this CLI cannot delete it); its API key stays saved."
    except EndpointStillRunning as error:  # delete exited 0, yet the endpoint is still there
        print(error)
        return f"{name} is STILL RUNNING on FlexAI, and billed: see the message above."
    return f"Deleted {name} on FlexAI."
