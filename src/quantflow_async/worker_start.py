"""Whether this process is a worker still importing the main script.

A sweep's worker processes import the script that started the sweep, as Python's
multiprocessing does for every process it spawns (or forks from its server), and so run
its top-level code again unless that code is under `if __name__ == "__main__":`. Such a
worker would open the database and store a second strategy, or fail on one already there,
before failing each job it was given. `refuse_script_rerun` stops it at its first call
into the library instead, with the one fix in the message.
"""

from __future__ import annotations

import sys

from quantflow_async.errors import ScriptRerun


def refuse_script_rerun(what: str) -> None:
    """ScriptRerun if this process is a multiprocessing child importing the main script."""
    process = sys.modules.get("multiprocessing.process")
    if process is None or not getattr(process.current_process(), "_inheriting", False):
        return
    script = sys.argv[0] if sys.argv and sys.argv[0] else "__main__"  # set before the import
    raise ScriptRerun(
        f"{what} was called by a worker process while it imported the main script, "
        f"{script}: "
        "put the script's top-level code under `if __name__ == \"__main__\":`, as Python's "
        "multiprocessing requires of a script whose work runs in other processes"
    )
