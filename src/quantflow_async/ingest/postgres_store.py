"""Where a writer's batches go on PostgreSQL: the writer's kept connection
(ingest/postgres_connection.py), the batch and its token in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.ingest.ahead import NextBatch
from quantflow_async.ingest.postgres_connection import KeptConnection
from quantflow_async.records import Fill
from quantflow_async.store.trade_insert import (
    PG_FIND_BATCH,
    PG_FORGET_BATCHES,
    PG_RECORD_BATCH,
    PostgresFillSink,
)

TOKEN_LIFETIME_SECONDS = 86_400


class PostgresStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._kept = KeptConnection(engine)
        self._sink = PostgresFillSink()

    @property
    def pid(self) -> int | None:
        """The server process serving the connection (what `pg_terminate_backend` takes)."""
        return self._kept.pid

    async def open(self) -> None:
        await self._kept.open()

    async def store(
        self,
        fills: Sequence[Fill],
        token: str,
        previous: str | None,
        next_batch: NextBatch | None = None,
    ) -> int:
        # Never sends ahead: a connection runs one statement at a time, and COPY already
        # streams the batch while the server takes it.
        driver = await self._kept.open()
        now = datetime.now(UTC)
        prune_before = datetime.fromtimestamp(now.timestamp() - TOKEN_LIFETIME_SECONDS, UTC)
        async with driver.transaction():
            inserted = await self._sink.insert(driver, fills)
            await driver.execute(PG_FORGET_BATCHES, previous, prune_before)
            await driver.execute(PG_RECORD_BATCH, token, inserted, now)
        return inserted

    async def lookup(self, token: str) -> int | None:
        driver = await self._kept.open()  # an abandoned connection's server process outlived
        found = await driver.fetchval(PG_FIND_BATCH, token)
        return None if found is None else int(found)

    async def abandon(self) -> None:
        """Drop the connection at once, without a goodbye to a server that may not answer."""
        await self._kept.abandon()

    async def aclose(self) -> None:
        await self._kept.aclose()
