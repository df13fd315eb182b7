"""Writing and reading files safely: atomic replacement, and private (mode 0600) files.

Every file this package writes goes through `atomic_writer` or `write_atomic`: the bytes go to a
new file under a random name beside the target (created with O_EXCL, so never through a planted
symlink) and a rename puts it in place, so a reader sees the old file or the new one, never half.
Private files (keys, records, logs) are 0600 whatever the umask and never opened through a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from .errors import UnsafeStateError

PRIVATE = 0o600  # keys, tokens, endpoint records, logs
PUBLIC = 0o644  # clips, figures, manifests: not secrets
# The suffix of a temporary file before its rename; one left behind by a crash has it too.
TEMPORARY_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, *, mode: int = PUBLIC) -> Iterator[BinaryIO]:
    """A binary stream whose bytes replace `path` (with permissions `mode`) when the block ends.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    # mkstemp creates the file 0600 with O_EXCL under a random name: a secret is never readable
    # by others, and a symlink planted at `path` is replaced by the rename, never written through.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(handle, "w+b") as stream:  # readable too: libsndfile may read back a header
            yield stream
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes, *, mode: int = PUBLIC) -> Path:
    """Replace `path` with `data` (text is written as UTF-8) atomically; return the path."""
    with atomic_writer(path, mode=mode) as stream:
        stream.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def replace_with_empty(path: str | os.PathLike) -> BinaryIO:
    """A new, empty 0600 file at `path`, open for writing, that replaced whatever was there.

    The file is made under a random name with O_EXCL and renamed over `path`: a symlink planted
    at `path` is replaced, its target never truncated.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.close(handle)
        Path(temporary).unlink(missing_ok=True)
        raise
    return os.fdopen(handle, "wb")


def refuse_if_others_control(info: os.stat_result, what: str, fix: str) -> None:
    """Raise `UnsafeStateError` when another user owns `what` (its `os.stat` is `info`) or group or
    others can write it: what it holds is theirs to choose. `fix` says how to make it safe."""
    if info.st_uid != os.getuid():
        raise UnsafeStateError(
            f"{what} belongs to another user (uid {info.st_uid}): refusing to use it; {fix}"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(info.st_mode)
        raise UnsafeStateError(f"{what} can be written by others (mode {mode:o}): refusing to use it; {fix}")


def private_dir(path: str | os.PathLike) -> Path:
    """`path` as a folder of mode 0700 (each missing level created 0700, whatever the umask)."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    return path


def open_private(path: str | os.PathLike, mode: str = "w") -> IO:
    """Open a private file for writing: never through a symlink, created 0600.

    `mode` is ``"x"`` (new file; `FileExistsError` if anything is there), ``"w"``/``"wb"``
    (create or truncate a regular file) or ``"a"``/``"ab"``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    flags |= {"x": os.O_EXCL, "w": os.O_TRUNC, "a": os.O_APPEND}[mode[0]]
    try:
        handle = os.open(path, flags, PRIVATE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeStateError(f"{path} is a symlink: refusing to write through it") from None
        raise
    os.fchmod(handle, PRIVATE)
    binary = "b" in mode
    return os.fdopen(handle, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"}))


def read_private(path: str | os.PathLike) -> str | None:
    """The text of a private file, or None when it does not exist.

    Refused (`UnsafeStateError`) when it is a symlink or others may read or write it: a key
    others could read is no longer a secret, and one others could write is not ours.
    """
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeStateError(f"{path} is a symlink: refusing to read a secret through it") from None
        raise
    with os.fdopen(handle, "rb") as stream:
        info = os.fstat(stream.fileno())
        if info.st_mode & 0o077 or info.st_uid != os.getuid():
            raise UnsafeStateError(
                f"{path} is readable or writable by others (mode {stat.S_IMODE(info.st_mode):o}, "
                f"uid {info.st_uid}): refusing to use it; remove it, or `chmod 600 {path}` if it is yours"
            )
        return stream.read().decode("utf-8")


def read_log(path: str | os.PathLike) -> str | None:
    """The text of a log file of ours (not followed through a symlink), or None when missing."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(handle, "rb") as stream:
        return stream.read().decode("utf-8", "replace")
