"""Settings from the environment, then from a ``.env`` file: the one place that reads either.

The tutorial tells people to put ``INFERENCE_URL`` and ``INFERENCE_API_KEY`` in ``.env``; the
client, the CLI and deploy all look them up here, so each finds what the others find. A variable
set in the environment wins over the file; a blank value counts as unset.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values, find_dotenv


def dotenv_file(env_file: str | os.PathLike | None = None) -> dict[str, str | None]:
    """The values in `env_file`, else in the nearest ``.env`` at or above the working directory."""
    path = env_file if env_file is not None else find_dotenv(usecwd=True)
    return dotenv_values(path) if path and Path(path).is_file() else {}


def resolve(*names: str, env_file: str | os.PathLike | None = None) -> dict[str, str | None]:
    """Each name's value: the environment first, then the ``.env`` file; None when unset or blank.

    The file is read only when the environment leaves a name unset.
    """
    found = {name: (os.environ.get(name) or "").strip() or None for name in names}
    if any(value is None for value in found.values()):
        from_file = dotenv_file(env_file)
        for name, value in found.items():
            if value is None:
                found[name] = (from_file.get(name) or "").strip() or None
    return found
