"""Whether this process is a worker still importing the main script.

A sweep's worker processes import the script that started the sweep, as Python's
multiprocessing does for every process it spawns (or forks from its server), and so run
its top-level code again unless that code is under `if __name__ == "__main__":`. Such a
worker would open the database and store a second strategy, or fail on one already there,
before failing each job it was given. `refuse_script_rerun` stops it when it opens the
database instead, with the one fix in the message. Making a `Database` object opens
nothing, so a guarded script may keep one at module level.
"""

from __future__ import annotations

import os
import sys
from types import FrameType, TracebackType
from typing import Final

from quantflow_async.errors import ScriptRerun


def refuse_script_rerun(what: str) -> None:
    """ScriptRerun if this process is a multiprocessing child importing the main script and
    the call comes from that script's code."""
    process = sys.modules.get("multiprocessing.process")
    if process is None or not getattr(process.current_process(), "_inheriting", False):
        return
    if not _called_from_main_script():
        return  # a module the child imports to unpickle its target: nothing re-run
    script = main_script()
    _end_quietly_if_uncaught()
    raise ScriptRerun(
        f"{what} by a worker process while it imported the main script, "
        f"{script}: "
        "put the script's top-level code under `if __name__ == \"__main__\":`, as Python's "
        "multiprocessing requires of a script whose work runs in other processes"
    )


def main_script() -> str:
    """The main script's path as it was run (set before a worker imports it), or __main__."""
    return sys.argv[0] if sys.argv and sys.argv[0] else "__main__"


SCRIPT_RERUN_EXIT: Final = 97
"""The exit status of a worker process ended by an uncaught ScriptRerun. A sweep whose worker
ends so before it sent a word stops at once with the same fix, instead of starting another
worker to end the same way."""


def _end_quietly_if_uncaught() -> None:
    """Let ScriptRerun, if nothing catches it, end this process with its message alone (no
    traceback through multiprocessing's start-up) and SCRIPT_RERUN_EXIT. multiprocessing
    hands an exception of a starting child to sys.excepthook, spawned or forked from its
    server."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        if not isinstance(error, ScriptRerun):
            previous(kind, error, trace)
            return
        print(f"quantflow: {error}", file=sys.stderr, flush=True)
        os._exit(SCRIPT_RERUN_EXIT)

    sys.excepthook = hook


def _called_from_main_script() -> bool:
    """Whether a caller is the main script's code, which multiprocessing runs under the
    name `__mp_main__` while it imports the script."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "__mp_main__":
            return True
        frame = frame.f_back
    return False
