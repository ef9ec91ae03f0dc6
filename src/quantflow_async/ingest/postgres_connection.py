"""One pooled PostgreSQL connection a writer keeps for its batches, driven through its raw
asyncpg connection: no checkout, ping or reset per batch.

A batch cut short (cancelled, timed out, the connection lost) leaves its transaction in
doubt: the connection is dropped whole, and before anything asks what it committed or runs
it again, the server process that served it is ended and waited out, since a slow COMMIT
goes on without its client. A new connection that breaks while it waits is dropped in turn,
and the next one waits out both server processes. A process is known by its number and its
start, so a number the kernel has given to another process since is left alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from quantflow_async.store.trade_insert import driver_connection

_BACKEND_START = "SELECT backend_start FROM pg_stat_activity WHERE pid = $1"
# A process number is the kernel's, reused by a later process (a server restart starts them
# again): a server process is named by its number and the moment it started.
_END = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2"
)
_ALIVE = "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2"

ServerProcess = tuple[int, datetime]
"""A server process: its number and when it started."""


class KeptConnection:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._driver: Any = None
        self._server: ServerProcess | None = None
        self._abandoned: set[ServerProcess] = set()

    @property
    def pid(self) -> int | None:
        """The server process serving the connection (what `pg_terminate_backend` takes)."""
        return None if self._driver is None or self._server is None else self._server[0]

    async def open(self) -> Any:
        """The asyncpg connection, opened if there is none, once every abandoned one's
        server process is gone; a connection that fails while it waits is abandoned too."""
        if self._driver is None:
            self._connection = await self._engine.connect()
            self._driver = await driver_connection(self._connection)
            pid = int(self._driver.get_server_pid())
            self._server = (pid, await self._driver.fetchval(_BACKEND_START, pid))
        try:
            for process in sorted(self._abandoned):
                await self._outlive(process)
                self._abandoned.discard(process)
        except BaseException:
            await self.abandon()
            raise
        return self._driver

    async def _outlive(self, process: ServerProcess) -> None:
        driver = self._driver
        await driver.execute(_END, *process)
        # The server offers no event for a process's end: ask until it is gone.
        while await driver.fetchval(_ALIVE, *process):  # noqa: ASYNC110
            await anyio.sleep(0.01)

    async def abandon(self) -> None:
        """Drop the connection at once, without a goodbye to a server that may not answer."""
        driver = self._driver
        if driver is not None:
            if self._server is not None:
                self._abandoned.add(self._server)
            driver.terminate()
        await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            with anyio.CancelScope(shield=True):
                # A broken connection must not go back to the pool.
                await connection.invalidate()
                await connection.close()
