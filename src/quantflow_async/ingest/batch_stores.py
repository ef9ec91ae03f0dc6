"""Where a TradeWriter commits its batches: one transaction per call, on its own connection.

- `WorkerStore`, for a SQLite file: the connection lives in a worker process, so inserting
  never competes with the caller's event loop for the GIL (see sqlite_worker_main.py).
- `ConnectionStore`, for PostgreSQL: a pooled connection of the engine, driven through its
  raw asyncpg connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from quantflow_async.config import Settings
from quantflow_async.ingest.sqlite_worker import SqliteWorker
from quantflow_async.records import Fill
from quantflow_async.store.engine import sqlite_file, sqlite_pragmas
from quantflow_async.store.trade_insert import SQLITE_INSERT, driver_connection, sink_for
from quantflow_async.validation import epoch_micros


class BatchStore(Protocol):
    async def open(self) -> None: ...

    async def store(self, fills: Sequence[Fill]) -> int:
        """Commit `fills` in one transaction; return how many were new."""
        ...

    async def aclose(self) -> None:
        """Let go of the connection; safe to call on a broken or closed one."""
        ...


class WorkerStore:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        # The file name exactly as the engine's own connections open it (URI options included).
        (database,), options = engine.dialect.create_connect_args(engine.url)
        self.worker = SqliteWorker(
            database, bool(options.get("uri")), sqlite_file(engine.url), sqlite_pragmas(settings)
        )

    async def open(self) -> None:
        await self.worker.start()

    async def store(self, fills: Sequence[Fill]) -> int:
        sql = SQLITE_INSERT.format(now=epoch_micros(datetime.now(UTC)))
        return await self.worker.store(sql, [fill._row for fill in fills])

    async def aclose(self) -> None:
        await self.worker.aclose()


class ConnectionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sink = sink_for(engine.dialect.name)
        self._connection: AsyncConnection | None = None
        self.driver: Any = None

    async def open(self) -> None:
        self._connection = await self._engine.connect()
        self.driver = await driver_connection(self._connection)

    async def store(self, fills: Sequence[Fill]) -> int:
        async with self._sink.transaction(self.driver):
            return await self._sink.insert(self.driver, fills)

    async def aclose(self) -> None:
        connection, self._connection, self.driver = self._connection, None, None
        if connection is not None:
            # A broken connection must not go back to the pool.
            await connection.invalidate()
            await connection.close()


def batch_store_for(engine: AsyncEngine, settings: Settings) -> BatchStore:
    if engine.dialect.name == "sqlite":
        return WorkerStore(engine, settings)
    return ConnectionStore(engine)
