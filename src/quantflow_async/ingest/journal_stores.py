"""Where the order journal's batches go, one store per kind of database. Each commits a batch
in one transaction, its claims read first in the same transaction; a batch cut short is in
doubt and is run again as is (every statement of a batch is idempotent).

- SQLite file: the journal's worker process; the next batch ready is sent right behind the
  one in flight, so the worker goes on to it without waiting for the event loop, and runs it
  only if the one before committed.
- PostgreSQL: a connection of the journal's own, driven raw (a pooled one per batch cost a
  checkout, a ping and a reset each, measured by benchmarks/journal.py); a batch's events
  and fills are COPied when there are many.
- Any other engine (an OrderJournal made without settings): a pooled connection per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.config import Settings, WriterOptions
from quantflow_async.ingest.batch_store import sqlite_worker_store
from quantflow_async.ingest.journal_batches import ClaimSettler, JournalBatch, holders
from quantflow_async.ingest.postgres_connection import KeptConnection
from quantflow_async.ingest.sqlite_worker import SqliteWorkerStore
from quantflow_async.store.engine import write_transaction
from quantflow_async.store.journal_batch import (
    EVENT_COLUMNS,
    TRADE_COLUMNS,
    JournalStatements,
    statements_for,
)
from quantflow_async.store.journal_fence import LeaseFence, check_fence_on
from quantflow_async.store.trade_insert import PG_COPY_FROM

log = logging.getLogger(__name__)


class JournalStore(Protocol):
    @property
    def pid(self) -> int | None:
        """The process holding the store's write connection, while it has one."""

    @property
    def ahead(self) -> JournalBatch | None:
        """A batch taken from the queue behind the one in flight, not committed yet."""

    def take_ahead(self) -> JournalBatch | None:
        """The batch taken ahead, handed back to be committed next (None if there is none)."""

    async def write(self, batch: JournalBatch) -> None: ...

    async def aclose(self) -> None: ...


class _NothingAhead:
    @property
    def ahead(self) -> JournalBatch | None:
        return None

    def take_ahead(self) -> JournalBatch | None:
        return None


class PooledJournalStore(_NothingAhead):
    def __init__(
        self, engine: AsyncEngine, statements: JournalStatements, venue: str, claims: ClaimSettler
    ) -> None:
        self._engine = engine
        self._statements = statements
        self._venue = venue
        self._claims = claims

    @property
    def pid(self) -> int | None:
        return None

    async def write(self, batch: JournalBatch) -> None:
        async with write_transaction(self._engine) as conn:
            if batch.claims:
                ids = [claim.venue_order_id for claim in batch.claims]
                held = await self._statements.holders(conn, self._venue, ids)
                self._claims.settle(held, batch)
            await self._statements.write(conn, batch.rows)

    async def aclose(self) -> None:
        pass


class PostgresJournalStore(_NothingAhead):
    def __init__(
        self,
        engine: AsyncEngine,
        statements: JournalStatements,
        venue: str,
        claims: ClaimSettler,
        fence: Callable[[], LeaseFence | None],
    ) -> None:
        self._kept = KeptConnection(engine)
        self._fence = fence
        self._statements = statements
        self._venue = venue
        self._claims = claims
        self._copied = {
            statements.events: ("order_events", EVENT_COLUMNS),
            statements.trades: ("trades", TRADE_COLUMNS),
        }

    @property
    def pid(self) -> int | None:
        """The server process serving the journal's connection."""
        return self._kept.pid

    async def write(self, batch: JournalBatch) -> None:
        """Commit the batch, or drop the connection: the batch then runs again on a new one
        once the old one's server process is gone."""
        driver = await self._kept.open()
        try:
            async with driver.transaction():
                await check_fence_on(driver, self._fence())
                if batch.claims:
                    ids = [claim.venue_order_id for claim in batch.claims]
                    held = [
                        row
                        for query, parameters in self._statements.holder_queries(self._venue, ids)
                        for row in await driver.fetch(query, *parameters)
                    ]
                    self._claims.settle(holders(held), batch)
                for statement, rows in self._statements.steps(batch.rows):
                    copied = self._copied.get(statement)
                    if copied is None or len(rows) < PG_COPY_FROM:
                        await driver.executemany(statement, rows)
                    elif not await _copied_whole(driver, *copied, rows):
                        await driver.executemany(statement, rows)
        except BaseException:
            await self._kept.abandon()
            raise

    async def aclose(self) -> None:
        await self._kept.aclose()


async def _copied_whole(driver: Any, table: str, columns: Sequence[str], rows: list[Any]) -> bool:
    """COPY `rows` into `table` in a savepoint: at COPY's speed, events and fills of a batch
    run for the first time. False, with nothing copied, if a row breaks a rule (a batch run
    again finds its rows stored): the batch's own INSERT ... ON CONFLICT then decides."""
    try:
        async with driver.transaction():
            await driver.copy_records_to_table(table, records=rows, columns=columns)
    except Exception as exc:
        if str(getattr(exc, "sqlstate", ""))[:2] != "23":  # not a rule a row broke
            raise
        return False
    return True


class SqliteJournalStore:
    def __init__(
        self,
        worker: SqliteWorkerStore,
        statements: JournalStatements,
        venue: str,
        claims: ClaimSettler,
        next_ready: Callable[[], JournalBatch | None],
    ) -> None:
        """`next_ready` takes the next batch from the queue if one is ready, else None."""
        self._worker = worker
        self._statements = statements
        self._venue = venue
        self._claims = claims
        self._next_ready = next_ready
        self._ahead: JournalBatch | None = None

    @property
    def pid(self) -> int | None:
        """The worker process, while it runs."""
        return self._worker.pid

    @property
    def ahead(self) -> JournalBatch | None:
        return self._ahead

    def take_ahead(self) -> JournalBatch | None:
        batch, self._ahead = self._ahead, None
        return batch

    async def write(self, batch: JournalBatch) -> None:
        worker = self._worker
        if worker.pid is None:
            await worker.open()
        try:
            while True:
                if not batch.sent:
                    await self._send(batch, after=False)
                await self._send_ahead()
                reply = await worker.journal_reply(batch.key)
                batch.sent = False
                if reply[0] == "ok":
                    return
                if reply[0] == "held":
                    self._claims.settle(holders(reply[1]), batch)
                    await self._skipped_ahead()
                # held or skipped: nothing of it was written; it goes again
        except BaseException:
            # A transaction may be open in the worker, or a reply lost: a new worker runs the
            # batch again, and the one sent ahead after it.
            batch.sent = False
            if self._ahead is not None:
                self._ahead.sent = False
            await worker.abandon()
            raise

    async def _skipped_ahead(self) -> None:
        """Read the reply to the batch sent behind one that did not commit (the worker left it
        alone), so that it goes again after that one, never before it."""
        ahead = self._ahead
        if ahead is not None and ahead.sent:
            await self._worker.journal_reply(ahead.key)
            ahead.sent = False

    async def _send_ahead(self) -> None:
        if self._ahead is None:
            self._ahead = self._next_ready()
            if self._ahead is None:
                return
        if not self._ahead.sent:
            await self._send(self._ahead, after=True)
            log.debug("journal: batch %s sent behind the one in flight", self._ahead.key)

    async def _send(self, batch: JournalBatch, *, after: bool) -> None:
        self._claims.keep_refused_claims_out(batch.rows)
        await batch.send(self._worker, self._statements, self._venue, after=after)

    async def aclose(self) -> None:
        await self._worker.aclose()


def journal_store(
    engine: AsyncEngine,
    settings: Settings | None,
    options: WriterOptions,
    *,
    venue: str,
    claims: ClaimSettler,
    next_ready: Callable[[], JournalBatch | None],
    fence: Callable[[], LeaseFence | None] = lambda: None,
) -> JournalStore:
    """The store for `engine`'s kind of database (a SQLite worker needs `settings`); on
    PostgreSQL each batch first checks `fence()`, the journal's lease."""
    statements = statements_for(engine.dialect.name)
    if engine.dialect.name == "postgresql":
        return PostgresJournalStore(engine, statements, venue, claims, fence)
    if settings is not None and engine.dialect.name == "sqlite":
        # A worker process of its own, as the TradeWriter's: binding and stepping rows on a
        # thread of the event loop's process took the GIL from the producers.
        worker = sqlite_worker_store(engine, settings, options)
        return SqliteJournalStore(worker, statements, venue, claims, next_ready)
    return PooledJournalStore(engine, statements, venue, claims)
