"""The aiosqlite connections the SQLite engine opens: ones whose close() always returns.

aiosqlite's `Connection.close()` closes the sqlite3 connection on the connection's thread,
then asks the thread to stop and waits until it has. `Connection.stop()` asks the same
without waiting. SQLAlchemy drops a connection whose query was cancelled by closing it in a
shielded task, and calls `stop()` when that close is cancelled in turn (asyncio's repeated
cancellation of a stopping task group does it). The thread then ends at the first request to
stop. The close, once it gets to its own request, waits for a thread that is gone, and so
does `asyncio.run`, which waits for every task before it returns: a script stopped with
Ctrl-C then never exits. Here a connection asks its thread to stop once; a second request
finds it asked already, and waits for nothing.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from typing import Any

import aiosqlite


class StoppingOnce(aiosqlite.Connection):
    """An aiosqlite connection that asks its thread to stop at most once."""

    _stop_asked = False

    def stop(self) -> asyncio.Future[Any] | None:
        """Ask the thread to close the connection and stop; None if that was asked before
        (the thread may be gone: nothing would answer)."""
        if self._stop_asked:
            return None
        self._stop_asked = True
        return super().stop()


def connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> StoppingOnce:
    """What `aiosqlite.connect(database, **kwargs)` makes, as a StoppingOnce. Its thread is a
    daemon, as SQLAlchemy makes aiosqlite's own: a connection left open never holds up the
    interpreter's exit."""
    opening = functools.partial(sqlite3.connect, database, **kwargs)
    connection = StoppingOnce(opening, iter_chunk_size)
    connection._thread.daemon = True
    return connection
