"""Where a writer's batches go on PostgreSQL: one pooled connection of the engine, driven
through its raw asyncpg connection, the batch and its token in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from quantflow_async.ingest.ahead import NextBatch
from quantflow_async.records import Fill
from quantflow_async.store.trade_insert import (
    PG_FIND_BATCH,
    PG_FORGET_BATCHES,
    PG_RECORD_BATCH,
    PostgresFillSink,
    driver_connection,
)

TOKEN_LIFETIME_SECONDS = 86_400


class PostgresStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sink = PostgresFillSink()
        self._connection: AsyncConnection | None = None
        self._driver: Any = None
        self._server_pid: int | None = None
        self._abandoned_pid: int | None = None

    @property
    def pid(self) -> int | None:
        """The server process serving the connection (what `pg_terminate_backend` takes)."""
        return None if self._driver is None else self._server_pid

    async def open(self) -> None:
        self._connection = await self._engine.connect()
        self._driver = await driver_connection(self._connection)
        self._server_pid = int(self._driver.get_server_pid())

    async def store(
        self,
        fills: Sequence[Fill],
        token: str,
        previous: str | None,
        next_batch: NextBatch | None = None,
    ) -> int:
        # Never sends ahead: a connection runs one statement at a time, and COPY already
        # streams the batch while the server takes it.
        driver = self._driver
        now = datetime.now(UTC)
        prune_before = datetime.fromtimestamp(now.timestamp() - TOKEN_LIFETIME_SECONDS, UTC)
        async with driver.transaction():
            inserted = await self._sink.insert(driver, fills)
            await driver.execute(PG_FORGET_BATCHES, previous, prune_before)
            await driver.execute(PG_RECORD_BATCH, token, inserted, now)
        return inserted

    async def lookup(self, token: str) -> int | None:
        if self._abandoned_pid is not None:
            await self._outlive(self._abandoned_pid)
            self._abandoned_pid = None
        found = await self._driver.fetchval(PG_FIND_BATCH, token)
        return None if found is None else int(found)

    async def _outlive(self, pid: int) -> None:
        """Wait until the server process of an abandoned connection is gone: until then its
        transaction may still commit (a slow COMMIT goes on without its client), and the
        token would be asked too early."""
        driver = self._driver
        await driver.execute("SELECT pg_terminate_backend($1)", pid)
        # The server offers no event for a process's end: ask until it is gone.
        while await driver.fetchval(  # noqa: ASYNC110
            "SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid
        ):
            await anyio.sleep(0.01)

    async def abandon(self) -> None:
        """Drop the connection at once, without a goodbye to a server that may not answer."""
        driver = self._driver
        if driver is not None:
            self._abandoned_pid = self._server_pid
            driver.terminate()
        await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            with anyio.CancelScope(shield=True):
                # A broken connection must not go back to the pool.
                await connection.invalidate()
                await connection.close()
