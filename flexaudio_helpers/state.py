"""The per-user state folder: where it is, the ledger of the files written there, locks, and forgetting
them (`forget_saved_state`).

Endpoints, API keys and tokens live here so that a notebook run later, in another kernel,
finds them. ``FLEXAUDIO_STATE_DIR`` moves the folder (tests use a temporary one).

Everything here is written as if someone else could plant files: folders are 0700 and files
0600 whatever the umask (through `files`, which writes atomically and never through a symlink),
and a folder others can write to (or a symlink to one planted by someone else) is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import platformdirs

from .errors import FlexAudioError, UnsafeStateError
from .files import (
    PRIVATE,
    TEMPORARY_SUFFIX,
    open_private,
    private_dir,
    read_log,
    refuse_if_others_control,
    replace_with_empty,
    write_atomic,
)
from .settings import setting

STATE_DIR_ENV = "FLEXAUDIO_STATE_DIR"
# Written when this package creates the state folder: only then may `forget_saved_state` remove it.
MARKER_NAME = ".flexaudio-state"
# Every file this package writes in the state folder is listed here (one relative path a line),
# so `forget_saved_state` removes exactly those, wherever FLEXAUDIO_STATE_DIR points.
LEDGER_NAME = ".flexaudio-files"
# What this package writes, by name: also removed in a folder flexaudio created (or its default
# folder), which may hold files from versions that kept no ledger.
OWNED_FILES = (
    MARKER_NAME,
    "local-endpoint.key",
    "inference.env",
    "flexai-serve-*.out",
    "endpoints/*/*.json",
    "secrets/*",
    "logs/*.log",
    "locks/*.lock",
)
OWNED_FOLDERS = ("endpoints/flexai", "endpoints/local", "endpoints", "secrets", "logs", "locks")
LOCK_TIMEOUT = 120.0


def _state_root() -> Path:
    """Where the state folder is (``FLEXAUDIO_STATE_DIR``, else the platform's per-user folder)."""
    return Path(setting(STATE_DIR_ENV) or platformdirs.user_state_dir("flexaudio"))


def state_dir() -> Path:
    """The state folder (created with mode 0700 when missing; refused when others can write to it)."""
    folder = _state_root()
    _check_not_planted(folder)
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        _write_marker(folder)
    _check_folder(folder)
    return folder


def _check_not_planted(folder: Path) -> None:
    """Refuse a symlink (the folder itself) that someone else owns: it points wherever they like."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) and info.st_uid != os.getuid():
        raise UnsafeStateError(
            f"the state folder {folder} is a symlink owned by another user (uid {info.st_uid}): "
            f"refusing to use it; set {STATE_DIR_ENV} to a folder of your own"
        )


def _check_folder(folder: Path) -> None:
    info = os.stat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeStateError(f"the state folder {folder} is not a folder; set {STATE_DIR_ENV} to a folder")
    refuse_if_others_control(
        info,
        f"the state folder {folder}",
        f"`chmod 700 {folder}` or set {STATE_DIR_ENV} to a folder of your own",
    )


def _write_marker(folder: Path) -> None:
    with contextlib.suppress(FileExistsError), open_private(folder / MARKER_NAME, "x") as stream:
        stream.write("This folder was created by flexaudio; forget_saved_state() may remove it.\n")


def _remember(path: Path) -> None:
    """Add `path` to the ledger of the state folder it is in (nothing for files elsewhere)."""
    root = _state_root()
    try:
        relative = path.absolute().relative_to(root.absolute())
    except ValueError:
        return
    ledger = root / LEDGER_NAME
    if "\n" in str(relative) or str(relative) in (read_log(ledger) or "").splitlines():
        return  # each file once: the ledger stays as small as the folder
    with open_private(ledger, "a") as stream:
        stream.write(f"{relative}\n")


def write_private(path: str | Path, text: str) -> Path:
    """Write `text` atomically to a file only its owner can read (mode 0600), noted in the ledger."""
    path = Path(path)
    private_dir(path.parent)
    write_atomic(path, text, mode=PRIVATE)
    _remember(path)
    return path


def fresh_private_file(path: str | Path) -> IO[bytes]:
    """A new, empty 0600 file at `path` (e.g. a log) replacing whatever was there, noted in the ledger.

    A symlink planted at `path` is replaced, its target never truncated (`files.replace_with_empty`).
    """
    path = Path(path)
    private_dir(path.parent)
    stream = replace_with_empty(path)
    try:
        _remember(path)
    except BaseException:
        stream.close()
        raise
    return stream


@contextlib.contextmanager
def state_lock(name: str, *, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold ``locks/<name>.lock`` (an flock, released when the holder exits or crashes).

    Serving and stopping one endpoint take it, so two kernels (or threads) never start two
    servers for the same name.
    """
    path = private_dir(state_dir() / "locks") / f"{name}.lock"
    with open_private(path, "a") as stream:
        _remember(path)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FlexAudioError(
                        f"{path} is still locked after {timeout:g} s: another process is serving or "
                        "stopping this endpoint"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(stream.fileno(), fcntl.LOCK_UN)


def forget_saved_state() -> list[str]:
    """Delete the files flexaudio saved (endpoints, API keys, local secrets, logs); return their paths.

    Those listed in the state folder's ledger, and (in a folder flexaudio created, or its default
    folder) those named like flexaudio's files. Nothing else is touched: folders are removed only
    when empty, and the state folder itself only when flexaudio created it (its marker file says
    so). Each removed file is printed, as a path relative to the state folder.
    """
    default = not setting(STATE_DIR_ENV)
    folder = state_dir()
    created_here = (folder / MARKER_NAME).is_file()
    ledger = folder / LEDGER_NAME
    listed = (read_log(ledger) or "").splitlines()
    found = {folder / name for name in listed if name and not Path(name).is_absolute() and ".." not in name}
    if created_here or default:
        for pattern in OWNED_FILES:
            found.update(folder.glob(pattern))
        for owned in OWNED_FOLDERS:  # write_private's temporary files, left by a crash
            found.update((folder / owned).glob(f".*{TEMPORARY_SUFFIX}"))
        found.update(folder.glob(f".*{TEMPORARY_SUFFIX}"))
    found.add(ledger)
    removed = []
    inside = folder.resolve()
    for path in sorted(found):
        if not path.parent.resolve().is_relative_to(inside):  # e.g. logs/ swapped for a symlink
            continue
        if path.is_symlink() or path.is_file():  # a symlink is removed, never what it points to
            path.unlink()
            removed.append(str(path.relative_to(folder)))
    for owned in OWNED_FOLDERS:
        with contextlib.suppress(OSError):  # missing, or holds files that are not ours
            (folder / owned).rmdir()
    if created_here:
        with contextlib.suppress(OSError):
            folder.rmdir()
    removed = [name for name in removed if name not in (MARKER_NAME, LEDGER_NAME)]
    print(f"Removed {len(removed)} saved file{'s' if len(removed) != 1 else ''} from {folder}:")
    for name in removed:
        print(f"  {name}")
    if folder.exists():
        print(f"Kept {folder}: it holds files flexaudio did not write, or flexaudio did not create it.")
    return removed
