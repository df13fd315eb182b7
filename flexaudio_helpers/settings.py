"""Settings from the environment, then from a ``.env`` file: the one place that reads either.

The tutorial tells people to put ``INFERENCE_URL`` and ``INFERENCE_API_KEY`` in ``.env``; the
client, the CLI, deploy and the state folder all read settings here, so each finds what the
others find. A variable set in the environment wins over the file; a blank value counts as
unset. The ``.env`` is the working folder's, else the project's (beside its ``pyproject.toml``,
so notebooks in ``notebooks/`` find it), never one in some other parent folder. The endpoint's
URL and key always come from one source (`endpoint_settings`), so a key is never sent to a URL
found somewhere else.

A ``.env`` is read literally (`read_dotenv`): python-dotenv would expand ``${HF_TOKEN}`` from the
environment, so a cloned folder's ``.env`` could send the learner's token to its own URL.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv.parser import parse_stream

from .errors import UnsafeStateError
from .files import refuse_if_others_control
from .protocol import INFERENCE_API_KEY_ENV, INFERENCE_URL_ENV

# The source checkout this package runs from (editable installs); unused when no pyproject is there.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _value(text: str | None) -> str | None:
    return (text or "").strip() or None


def dotenv_path(env_file: str | os.PathLike | None = None) -> Path | None:
    """`env_file`, else ``.env`` in the working folder, else in the project root; None when absent."""
    if env_file is not None:
        return Path(env_file) if Path(env_file).is_file() else None
    folders = [Path.cwd()] + ([PROJECT_ROOT] if (PROJECT_ROOT / "pyproject.toml").is_file() else [])
    return next((folder / ".env" for folder in folders if (folder / ".env").is_file()), None)


def read_dotenv(path: str | os.PathLike, names: tuple[str, ...]) -> dict[str, str | None]:
    """The values of `names` in the ``.env`` file at `path`, read literally (None when absent).

    Raises `UnsafeStateError` when another user owns the file or others can write it (its URL and
    key would be theirs to choose), and for a value holding ``${``, naming the file and line:
    other tools expand it from the environment, so it is never sent as it stands.
    """
    with open(path, encoding="utf-8") as stream:
        refuse_if_others_control(
            os.fstat(stream.fileno()), f"the settings file {path}", f"`chmod 600 {path}`"
        )
        bindings = [binding for binding in parse_stream(stream) if binding.key in names]
    values: dict[str, str | None] = {}
    for binding in bindings:  # the last one of a name wins, as in python-dotenv
        if binding.value and "${" in binding.value:
            text = binding.original.string  # starts with the blank lines before it
            line = binding.original.line + text[: len(text) - len(text.lstrip())].count("\n")
            raise UnsafeStateError(
                f"{path}:{line}: {binding.key} holds '${{', which would pull in another variable: "
                "write the value itself"
            )
        values[binding.key] = binding.value
    return values


def resolve(*names: str, env_file: str | os.PathLike | None = None) -> dict[str, str | None]:
    """Each name's value: the environment first, then the ``.env`` file; None when unset or blank."""
    found = {name: _value(os.environ.get(name)) for name in names}
    path = dotenv_path(env_file) if None in found.values() else None
    from_file = read_dotenv(path, names) if path else {}
    return {name: value or _value(from_file.get(name)) for name, value in found.items()}


def setting(name: str) -> str | None:
    """One setting: the environment first, then the ``.env`` file; None when unset or blank."""
    return resolve(name)[name]


def endpoint_settings(env_file: str | os.PathLike | None = None) -> tuple[str | None, str | None, str]:
    """``INFERENCE_URL``, ``INFERENCE_API_KEY`` and where both came from, never mixed.

    When the environment sets the URL, both come from the environment; else both from the
    ``.env`` file. The source is ``"the environment"`` or the file's path.
    """
    url = _value(os.environ.get(INFERENCE_URL_ENV))
    if url:
        return url, _value(os.environ.get(INFERENCE_API_KEY_ENV)), "the environment"
    path = dotenv_path(env_file)
    values = read_dotenv(path, (INFERENCE_URL_ENV, INFERENCE_API_KEY_ENV)) if path else {}
    return _value(values.get(INFERENCE_URL_ENV)), _value(values.get(INFERENCE_API_KEY_ENV)), str(path)
