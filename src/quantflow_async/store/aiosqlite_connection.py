"""The aiosqlite connections the SQLite engine opens: ones whose close() always returns.

aiosqlite's `Connection.close()` closes the sqlite3 connection on the connection's thread,
then asks the thread to stop and waits until it has. `Connection.stop()` asks the same
without waiting. SQLAlchemy drops a connection whose query was cancelled by closing it in a
shielded task, and calls `stop()` when the wait for that close is cancelled in turn. The
thread ends at the first request to stop and never answers a second: the close's own request
then waits forever, and so does `asyncio.run` at its end when its cancellation of the tasks
left reached that close just before the wait (a script stopped with Ctrl-C hung at exit).
Here a request after the first gets the first one's answer: each waits until the thread has
stopped, and no longer.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from typing import Any

import aiosqlite


class SingleStopConnection(aiosqlite.Connection):
    """An aiosqlite connection that asks its thread to stop once."""

    _stopping: asyncio.Future[Any] | None = None
    _stop_asked = False

    def stop(self) -> asyncio.Future[Any] | None:
        """Ask the thread to close the connection and stop; what it answers when it has (None
        when asked with no event loop in this thread). Asked again, the same answer, shielded:
        a waiter cancelled later must not cancel it for the others."""
        if not self._stop_asked:
            self._stop_asked = True
            self._stopping = super().stop()
            return self._stopping
        return None if self._stopping is None else asyncio.shield(self._stopping)


def connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> SingleStopConnection:
    """What `aiosqlite.connect(database, **kwargs)` makes, as a SingleStopConnection. Its
    thread is a daemon, as SQLAlchemy makes aiosqlite's own: a connection left open never
    holds up the interpreter's exit."""
    opening = functools.partial(sqlite3.connect, database, **kwargs)
    connection = SingleStopConnection(opening, iter_chunk_size)
    connection._thread.daemon = True
    return connection
