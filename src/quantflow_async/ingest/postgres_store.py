"""Where a writer's batches go on PostgreSQL: one pooled connection of the engine, driven
through its raw asyncpg connection, the batch and its token in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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

    @property
    def pid(self) -> int | None:
        """The server process serving the connection (what `pg_terminate_backend` takes)."""
        return None if self._driver is None else int(self._driver.get_server_pid())

    async def open(self) -> None:
        self._connection = await self._engine.connect()
        self._driver = await driver_connection(self._connection)

    async def store(self, fills: Sequence[Fill], token: str, previous: str | None) -> int:
        driver = self._driver
        now = datetime.now(UTC)
        prune_before = datetime.fromtimestamp(now.timestamp() - TOKEN_LIFETIME_SECONDS, UTC)
        async with driver.transaction():
            inserted = await self._sink.insert(driver, fills)
            await driver.execute(PG_FORGET_BATCHES, previous, prune_before)
            await driver.execute(PG_RECORD_BATCH, token, inserted, now)
        return inserted

    async def lookup(self, token: str) -> int | None:
        found = await self._driver.fetchval(PG_FIND_BATCH, token)
        return None if found is None else int(found)

    async def abandon(self) -> None:
        """Drop the connection at once, without a goodbye to a server that may not answer."""
        driver = self._driver
        if driver is not None:
            driver.terminate()
        await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            with anyio.CancelScope(shield=True):
                # A broken connection must not go back to the pool.
                await connection.invalidate()
                await connection.close()
