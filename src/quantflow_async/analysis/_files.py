"""Output files, for every writer of this package: checked before any work, written whole or not
at all.

A regular file, new or old, is written under a temporary name beside it and renamed at the end:
a failed or interrupted write leaves no file, and an older one as it was. The new file keeps the
old one's mode; a file that was not there gets 0666 less the umask, as a shell's `>` gives. A
symbolic link is followed: the file it names is replaced (or made), the link stays. A FIFO or a
device, and any name under /dev or /proc (`/dev/null`, `/dev/stdout`), is never replaced: the
whole file, made in a private temporary file first (Parquet and pictures need to seek), is
copied into it at the end. A folder or a socket is refused.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from quantflow_async.errors import InvalidValue

NAME_MAX: Final = 255  # bytes, where the file system does not say
_ATTEMPTS: Final = 100


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a write to `given` goes: `path` with symbolic links resolved, the mode of the file
    it replaces (None for a new file), and whether it is written through (a FIFO or device)."""

    given: Path
    path: Path
    mode: int | None
    through: bool


PICTURE_FORMATS: Final = ("png", "svg", "pdf")
"""The picture files matplotlib writes here, by their endings."""


def output_format(path: Path, *, page: bool) -> str:
    """The format `path`'s ending asks for: one of PICTURE_FORMATS, or "html" where an HTML
    `page` may be written too; InvalidValue otherwise."""
    chosen = path.suffix.lower().lstrip(".")
    if chosen in PICTURE_FORMATS or (page and chosen == "html"):
        return chosen
    nor_page = ", nor an .html page" if page else ""
    raise InvalidValue(
        "output", f"{path.name!r} is not a .png, .svg or .pdf file{nor_page}; name one that is"
    )


def check_output(path: str | os.PathLike[str]) -> None:
    """Raise OSError, with one line saying why, if `path` cannot be written as an output file;
    call it before the work whose result goes there."""
    _target(Path(path))


def _target(given: Path) -> _Target:
    if Path(os.path.abspath(given)).parts[1:2] in (("dev",), ("proc",)):
        return _stream(given)
    real = Path(os.path.realpath(given))
    try:
        status: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        status = None
    except OSError as exc:
        raise _cannot(given, exc) from exc
    if status is not None and stat.S_ISDIR(status.st_mode):
        raise IsADirectoryError(f"cannot write {given}: it is a directory; name a file")
    if status is not None and not stat.S_ISREG(status.st_mode):
        return _special(given, real, status.st_mode)
    limit = _name_max(real.parent)
    if len(os.fsencode(real.name)) > limit:
        reason = f"File name too long (more than {limit} bytes)"
        raise OSError(f"cannot write {given}: {reason}; choose a shorter name")
    if not real.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {given}: No such file or directory; "
            "choose a folder that exists and you can write to"
        )
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write {given}: Permission denied to make files in {real.parent}; "
            "choose a folder you can write to"
        )
    mode = None if status is None else stat.S_IMODE(status.st_mode)
    return _Target(given, real, mode, through=False)


def _stream(given: Path) -> _Target:
    """`/dev/stdout`, `/dev/fd/3`, `/proc/self/fd/1`, `/dev/null`: names of what a process
    writes into (a pipe, a terminal, a file the shell opened), never replaced."""
    try:
        mode = os.stat(given).st_mode
    except OSError as exc:
        raise _cannot(given, exc) from exc
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"cannot write {given}: it is a directory; name a file")
    if stat.S_ISREG(mode):
        return _Target(given, given, None, through=True)
    return _special(given, given, mode)


def _special(given: Path, real: Path, mode: int) -> _Target:
    if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
        kind = "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise OSError(f"cannot write {given}: it is {kind}; name a file, a FIFO or a device")
    if not os.access(real, os.W_OK):
        raise PermissionError(f"cannot write {given}: Permission denied")
    return _Target(given, real, None, through=True)


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def _cannot(given: Path, exc: OSError) -> OSError:
    reason = exc.strerror or str(exc)
    return type(exc)(f"cannot write {given}: {reason}")


@contextlib.contextmanager
def writing(path: Path) -> Iterator[Path]:
    """A temporary path to write `path`'s content to, put in its place if the block succeeds
    (renamed over a regular file, copied into a FIFO or device), else removed."""
    target = _target(path)
    temporary = _temporary(target)
    try:
        yield temporary
        if target.through:
            _copy_into(temporary, target)
        else:
            os.replace(temporary, target.path)
    finally:
        temporary.unlink(missing_ok=True)  # gone already if it was renamed


def _temporary(target: _Target) -> Path:
    """A new empty file for the content: beside a regular file (so that renaming it is atomic),
    with the mode the result will have; a private one in the temporary folder for the rest."""
    if target.through:
        handle, name = tempfile.mkstemp(prefix="quantflow-", suffix=".partial")
        os.close(handle)
        return Path(name)
    folder = target.path.parent
    for _ in range(_ATTEMPTS):
        temporary = folder / _temporary_name(target.path.name, _name_max(folder))
        try:
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _cannot(target.given, exc) from exc
        try:
            if target.mode is not None:
                os.fchmod(handle, target.mode)
        finally:
            os.close(handle)
        return temporary
    raise FileExistsError(f"cannot write {target.given}: no free temporary name beside it")


def _temporary_name(name: str, limit: int) -> str:
    """`.NAME.RANDOM.partial`, NAME shortened as needed to keep within `limit` bytes."""
    ending = f".{secrets.token_hex(4)}.partial"
    room = limit - len(os.fsencode(f".{ending}"))
    kept = name
    while len(os.fsencode(kept)) > room:
        kept = kept[:-1]
    return f".{kept}{ending}"


def _copy_into(temporary: Path, target: _Target) -> None:
    try:
        with temporary.open("rb") as source, target.path.open("wb") as sink:
            shutil.copyfileobj(source, sink)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _cannot(target.given, exc) from exc
