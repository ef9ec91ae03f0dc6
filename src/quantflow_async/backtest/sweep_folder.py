"""The temporary folder a sweep's workers read their sweep file from.

    with sweep_folder() as folder:        # quantflow-sweep-XXXXXXXX in the temporary folder
        ...                               # removed when the block ends, as usual

A sweep whose process is killed (SIGKILL, out of memory) cannot remove its folder, and the
folder holds a copy of every data set of the sweep. So the process holds an exclusive
`flock` on the folder's `owner.lock` for as long as the block runs, and every sweep that
starts removes the folders whose lock it can take: their owner is gone. A lock, unlike a
process id, cannot be mistaken for a new process that reused the id, and it is let go by the
kernel however the owner ends. A block removes its owner file last, so a process killed while
it removes its folder leaves one the next sweep removes too. Where there is no `flock`
(Windows, or a temporary folder on a file system that refuses it), a folder is only removed
by its own block.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

PREFIX: Final = "quantflow-sweep-"
OWNER: Final = "owner.lock"
"""The file whose lock the sweep holds; a folder without it is still being made."""


@contextlib.contextmanager
def sweep_folder(parent: Path | None = None) -> Iterator[Path]:
    """A new folder of this sweep's own in `parent` (the temporary folder), locked while the
    block runs and removed when it ends."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    owner: int | None = None
    try:
        owner = _locked_owner_file(folder)
        yield folder
    finally:
        _remove(folder)
        if owner is not None:
            os.close(owner)


def _locked_owner_file(folder: Path) -> int | None:
    """The descriptor of the folder's owner file, locked; None where there is no `flock`
    (Windows, or a file system that refuses it), and then no owner file either."""
    if sys.platform == "win32":  # pragma: no cover - no flock
        return None
    # Locked under another name and then renamed, so that a sweep that prunes never finds
    # an owner file not yet locked.
    making = folder / f".{OWNER}"
    owner = os.open(making, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(owner, fcntl.LOCK_EX)
    except OSError as exc:  # ENOLCK, EOPNOTSUPP: an NFS or FUSE temporary folder
        log.debug("sweep folder %s: no lock (%s); removed only by its own sweep", folder, exc)
        os.close(owner)
        making.unlink()
        return None
    making.rename(folder / OWNER)
    return owner


def _remove(folder: Path) -> None:
    """Remove `folder`, its owner file last: a process killed part way leaves the folder
    with its owner file, for the next sweep to remove, or empty."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name != OWNER:
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def prune_dead_sweep_folders(parent: Path | None = None) -> list[Path]:
    """Remove the folders of `parent` (the temporary folder) that sweeps whose process ended
    left behind; return them. A folder of a running sweep, one being made, one of another
    user and anything that is not a folder of ours are left as they are."""
    if sys.platform == "win32":  # pragma: no cover - no flock
        return []
    where = Path(tempfile.gettempdir() if parent is None else parent)
    removed = []
    try:
        candidates = [entry for entry in os.scandir(where) if entry.name.startswith(PREFIX)]
    except OSError:
        return []
    for entry in candidates:
        with contextlib.suppress(OSError):
            if _owned_folder(entry) and _owner_is_gone(Path(entry.path)):
                removed.append(Path(entry.path))
    return removed


def _owned_folder(entry: os.DirEntry[str]) -> bool:
    status = entry.stat(follow_symlinks=False)
    return entry.is_dir(follow_symlinks=False) and status.st_uid == os.getuid()


def _owner_is_gone(folder: Path) -> bool:
    """Remove `folder` if no process holds its owner lock; whether it did."""
    if sys.platform == "win32":  # pragma: no cover - never called there
        return False
    try:
        owner = os.open(folder / OWNER, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # still being made (or not a sweep's)
    try:
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its sweep is running
        # Held while removing, so that two sweeps starting at once do not both remove it.
        shutil.rmtree(folder, ignore_errors=True)
        return True
    finally:
        os.close(owner)
