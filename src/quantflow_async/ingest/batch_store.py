"""What a TradeWriter needs of the place its batches go, and which one a database gets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.config import Settings, WriterOptions
from quantflow_async.ingest.ahead import NextBatch
from quantflow_async.ingest.postgres_store import PostgresStore
from quantflow_async.ingest.sqlite_worker import SqliteWorkerStore
from quantflow_async.records import Fill
from quantflow_async.store.engine import pinned_file, sqlite_pragmas

WAL_LIMIT_BYTES = 64 * 1024 * 1024
"""Past this size of the SQLite WAL, the writer waits for readers to let it start over."""


class BatchStore(Protocol):
    @property
    def pid(self) -> int | None:
        """The process holding the write connection: the SQLite worker, or the PostgreSQL
        server process serving it; None while not connected."""
        ...

    async def open(self) -> None: ...

    async def store(
        self,
        fills: Sequence[Fill],
        token: str,
        previous: str | None,
        next_batch: NextBatch | None = None,
    ) -> int:
        """Commit `fills` and `token` in one transaction, deleting the `previous` token;
        return how many fills were new. A store that pipelines asks `next_batch` for the
        batch to send right behind this one (see ahead.py); its reply is read when that
        batch is stored."""
        ...

    async def lookup(self, token: str) -> int | None:
        """How many fills the batch of `token` stored, or None if it was never committed."""
        ...

    async def abandon(self) -> None:
        """Drop the connection at once: it is stuck, or its state is unknown."""
        ...

    async def aclose(self) -> None:
        """Let go of the connection; safe to call on a broken or closed one."""
        ...


STOP_GRACE_SECONDS = 10.0
"""How long a SQLite worker asked to stop may take before it is killed (at most the writer's
commit_timeout)."""


def batch_store_for(engine: AsyncEngine, settings: Settings, options: WriterOptions) -> BatchStore:
    if engine.dialect.name != "sqlite":
        return PostgresStore(engine)
    return sqlite_worker_store(engine, settings, options)


def sqlite_worker_store(
    engine: AsyncEngine, settings: Settings, options: WriterOptions
) -> SqliteWorkerStore:
    """A worker process for the SQLite file of `engine`, not yet started."""
    # The file name exactly as the engine's own connections open it (URI options included).
    (database,), connect_options = engine.dialect.create_connect_args(engine.url)
    return SqliteWorkerStore(
        database,
        bool(connect_options.get("uri")),
        pinned_file(engine),
        sqlite_pragmas(settings),
        WAL_LIMIT_BYTES,
        min(STOP_GRACE_SECONDS, options.commit_timeout),
    )
