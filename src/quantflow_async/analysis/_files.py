"""Files written whole or not at all: a temporary name beside the target, renamed at the end."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, renamed to it if the block succeeds, else removed."""
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a directory; name a file")
    try:
        handle, name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise type(exc)(
            f"cannot write {target}: {reason}; choose a folder that exists and you can write to"
        ) from exc
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
