"""One order journal per (strategy, venue) at a time, across processes.

The journal keeps the orders it tracks in memory, so a second journal on the same strategy and
venue would miss the first one's events (and could, say, fill an order past its quantity).
The lease that prevents it is released by the operating system when its holder dies, so a
crashed bot never blocks its own restart: on SQLite an exclusive `flock` of a small file
beside the database, on PostgreSQL a session advisory lock on a connection of the lease's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Final

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from quantflow_async.errors import Conflict
from quantflow_async.store.driver_errors import translated_errors
from quantflow_async.store.engine import pinned_file
from quantflow_async.store.journal_fence import LeaseFence

FENCE_WAIT_SECONDS: Final = 30.0
"""How long a journal taking a lease waits for the writes of the one that lost it."""


class JournalLease:
    """Held from `acquire()` to `release()`; `Conflict` when another journal holds it."""

    def __init__(self, engine: AsyncEngine, strategy_id: int, venue: str) -> None:
        self._engine = engine
        self._name = f"quantflow journal of strategy {strategy_id} on {venue!r}"
        self._key = _key("journal", strategy_id, venue)
        self._fence_key = _key("fence", strategy_id, venue)
        self._file: int | None = None
        self._connection: AsyncConnection | None = None
        self.fence: LeaseFence | None = None
        """On PostgreSQL, while held: what each write transaction checks (journal_fence)."""

    async def acquire(self) -> None:
        if self._engine.dialect.name == "postgresql":
            await self._acquire_advisory_lock()
        else:
            self._acquire_file_lock()

    async def release(self) -> None:
        self.fence = None
        file, self._file = self._file, None
        if file is not None:
            os.close(file)  # closing the descriptor releases the flock
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a dropped connection released it already
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
                )
            await connection.close()

    def _acquire_file_lock(self) -> None:
        # The file's own path, through any symbolic link: two names of one database must
        # find one lock. (A hard link in another folder is a second name this cannot see.)
        database = os.path.realpath(pinned_file(self._engine).path)
        path = Path(f"{database}.orders-{self._key & 0xFFFFFFFFFFFF:012x}.lock")
        file = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(file)
            raise self._taken() from None
        except BaseException:
            os.close(file)
            raise
        self._file = file

    async def _acquire_advisory_lock(self) -> None:
        with translated_errors(f"taking the lease of the {self._name}"):
            connection = await self._engine.connect()
            try:
                taken = await connection.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                )
                if taken:
                    fence = await self._fence_of(connection)
                await connection.commit()
            except BaseException:
                await connection.close()
                raise
        if not taken:
            await connection.close()
            raise self._taken()
        self._connection = connection
        self.fence = fence

    async def _fence_of(self, connection: AsyncConnection) -> LeaseFence:
        """The fence of the lease just taken, once the writes of a journal that held it
        before (and lost it) are over: they hold the fence key shared. Conflict if one is
        still under way after FENCE_WAIT_SECONDS (its process stopped mid-write, say)."""
        key = {"key": self._fence_key}
        deadline = anyio.current_time() + FENCE_WAIT_SECONDS
        while not await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), key):
            if anyio.current_time() >= deadline:
                raise Conflict(
                    f"the {self._name} is free, but a write of the journal that held it "
                    f"before is still under way after {FENCE_WAIT_SECONDS:.0f} s (its process "
                    "stopped or cut off mid-write?): open it again once that session ends"
                )
            await anyio.sleep(0.05)
        await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
        pid, started = (
            await connection.execute(
                text("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            )
        ).one()
        return LeaseFence(self._name, self._key, self._fence_key, pid, started)

    @property
    def pid(self) -> int | None:
        """The PostgreSQL server process holding the lease, while held."""
        return None if self.fence is None else self.fence.pid

    def _taken(self) -> Conflict:
        return Conflict(
            f"the {self._name} is open elsewhere (another bot or `quantflow live run`): "
            "one journal per strategy and venue at a time"
        )


def _key(purpose: str, strategy_id: int, venue: str) -> int:
    """A stable signed 64-bit key for (strategy, venue), as PostgreSQL's advisory locks take:
    the lease's ("journal"), or its fence's."""
    digest = hashlib.sha256(f"quantflow-{purpose}\0{strategy_id}\0{venue}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
