"""The per-user state folder and the private (mode 0600) files kept in it.

Endpoints, API keys and tokens live here so that a notebook run later, in another kernel,
finds them. ``FLEXAUDIO_STATE_DIR`` moves the folder (tests use a temporary one).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs


def state_dir() -> Path:
    """The state folder (created with mode 0700 when missing)."""
    folder = Path(os.environ.get("FLEXAUDIO_STATE_DIR") or platformdirs.user_state_dir("flexaudio"))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def write_private(path: str | Path, text: str) -> Path:
    """Write `text` atomically to a file only its owner can read (mode 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp creates the file 0600 from the start: the secret is never readable by others.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_private(path: str | Path) -> str | None:
    """The text of a private file, or None when it does not exist."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
