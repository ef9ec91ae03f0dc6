"""On PostgreSQL the journal commits its batches on a connection of its own. A batch cut
short there (its connection ended by the server, the journal's task cancelled while the
batch waits on a lock) is in doubt: the connection is dropped, its server process waited
out, and the batch run again on a new one; everything is stored once. Many events and fills
go by COPY, and a batch whose rows are stored already (run again) stores none twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import asyncpg
import pytest

from quantflow_async import Database, Settings, WriterOptions
from quantflow_async.ingest.journal_batches import JournalBatch
from quantflow_async.ingest.journal_stores import PostgresJournalStore
from quantflow_async.live.journal import OrderJournal
from quantflow_async.live.orders import Order

from ..conftest import make_fill
from ..support.server_processes import dsn, end_the_first_waiting_connection
from .journal_support import open_order, trade

FAST_RETRIES = WriterOptions(retry_attempts=5, retry_initial_delay=0.01, retry_max_delay=0.05)
WRITER_LOG = "quantflow_async.ingest.journal_writer"


@pytest.fixture
async def pg(postgres_database_url: str) -> AsyncIterator[Database]:
    settings = Settings(database_url=postgres_database_url, writer=FAST_RETRIES)
    async with Database(settings=settings) as database:
        await database.migrate()
        yield database


async def server_processes(db: Database) -> set[int]:
    connection = await asyncpg.connect(dsn(db))
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
        return {row["pid"] for row in rows}
    finally:
        await connection.close()


async def blocked_on_a_lock(db: Database, pid: int) -> None:
    connection = await asyncpg.connect(dsn(db))
    try:
        with anyio.fail_after(30):
            while not await connection.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            ):
                await anyio.sleep(0.01)
    finally:
        await connection.close()


@asynccontextmanager
async def a_fill_waiting_on_its_row(
    db: Database, journal: OrderJournal, order: Order
) -> AsyncIterator[tuple[asyncpg.Connection, asyncio.Task[bool]]]:
    """A fill of `order` recorded with wait=True, its batch blocked on the order's row, which
    another connection holds in an open transaction: that connection (ROLLBACK frees the row)
    and the waiting call."""
    locker = await asyncpg.connect(dsn(db))
    try:
        await locker.execute("BEGIN")
        await locker.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", order.id)
        filling = asyncio.create_task(journal.filled(trade(order, "1", "1"), wait=True))
        pid = journal.connection_pid
        assert pid is not None
        await blocked_on_a_lock(db, pid)
        yield locker, filling
    finally:
        await locker.close()


async def stored_once(db: Database, client_order_id: str, fills: int) -> None:
    order = await db.orders.get_by_client_order_id(client_order_id)
    assert (order.status, order.filled_quantity) == ("filled", 1)
    kinds = [event.kind for event in await db.orders.events(order.id)]
    assert kinds == ["intent", "submitted", "acknowledged", *["fill"] * fills]
    assert await db.trades.count() == fills
    (position,) = await db.orders.positions()
    assert position.quantity == 1


async def test_the_journal_commits_on_a_server_process_of_its_own_given_back_at_close(
    pg: Database,
) -> None:
    strategy = await pg.strategies.create(name="s")
    journal = pg.journal(strategy_id=strategy.id, venue="paper")
    async with journal:
        await open_order(journal)
        await journal.flush()
        pid = journal.connection_pid
        assert pid is not None and pid in await server_processes(pg)
    assert journal.connection_pid is None


@pytest.mark.parametrize(
    "next_one_ended_too", [False, True], ids=["one fault", "the next connection ended too"]
)
async def test_a_batch_whose_connection_the_server_ends_mid_way_is_stored_once(
    pg: Database,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    next_one_ended_too: bool,
) -> None:
    """The batch runs again on a new connection once the old server process is gone. In a
    double fault the new connection is ended too while it waits: the next one waits out
    both, and the journal goes on."""
    strategy = await pg.strategies.create(name="s")
    if next_one_ended_too:
        ended, outlived = end_the_first_waiting_connection(pg, monkeypatch)
    async with pg.journal(strategy_id=strategy.id, venue="paper") as journal:
        order = await open_order(journal)
        await journal.flush()
        first = journal.connection_pid
        assert first is not None
        async with a_fill_waiting_on_its_row(pg, journal, order) as (locker, filling):
            with caplog.at_level(logging.WARNING, logger=WRITER_LOG):
                await locker.execute("SELECT pg_terminate_backend($1)", first)
                await locker.execute("ROLLBACK")
                assert await filling
        assert journal.connection_pid not in (None, first)
        assert "retrying the batch" in caplog.text
        if next_one_ended_too:
            (second,) = ended
            assert sorted(outlived) == sorted([first, second])
            assert journal.connection_pid != second
    await stored_once(pg, order.client_order_id, fills=1)


async def test_a_batch_cut_short_by_a_cancellation_runs_again_after_its_server_process(
    pg: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio's own Task.cancel() (the loop shutting down) reaches the journal's task inside
    a batch: the batch is run again on a new connection, never beside the old one."""
    strategy = await pg.strategies.create(name="s")
    async with pg.journal(strategy_id=strategy.id, venue="paper") as journal:
        order = await open_order(journal)
        await journal.flush()
        first = journal.connection_pid
        assert first is not None
        async with a_fill_waiting_on_its_row(pg, journal, order) as (locker, filling):
            (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "JournalWriter"]
            with caplog.at_level(logging.WARNING, logger=WRITER_LOG):
                task.cancel()
                # The new connection first waits for the old server process to end: it still
                # holds its half-done batch, blocked on the row.
                await anyio.sleep(0.2)
                assert not filling.done()
                assert first not in await server_processes(pg)
                await locker.execute("ROLLBACK")
                assert await filling
        assert "cancelled from outside" in caplog.text  # and so the journal closes
    await stored_once(pg, order.client_order_id, fills=1)


async def many_fills(journal: OrderJournal, count: int) -> str:
    """An order of `count` filled in `count` trades of 1, all in one batch; its client id."""
    order = await open_order(journal, str(count))
    await journal.flush()
    for n in range(count):
        await journal.filled(trade(order, str(n), "1"))
    await journal.flush()
    return order.client_order_id


async def test_a_large_batch_run_twice_its_reply_lost_is_stored_once(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many events and fills go by COPY; a batch run again (committed, the reply lost) finds
    them stored, and its INSERT ... ON CONFLICT stores none of them twice."""
    write = PostgresJournalStore.write

    async def committed_then_run_again(store: PostgresJournalStore, batch: JournalBatch) -> None:
        await write(store, batch)
        await write(store, batch)

    monkeypatch.setattr(PostgresJournalStore, "write", committed_then_run_again)
    strategy = await pg.strategies.create(name="s")
    async with pg.journal(strategy_id=strategy.id, venue="paper", batch_size=1000) as journal:
        client_order_id = await many_fills(journal, 300)
    order = await pg.orders.get_by_client_order_id(client_order_id)
    assert (order.status, order.filled_quantity) == ("filled", 300)
    assert len(await pg.orders.events(order.id)) == 3 + 300
    assert await pg.trades.count() == 300


async def test_a_large_batch_with_a_fill_stored_already_stores_the_others_once(
    pg: Database,
) -> None:
    strategy = await pg.strategies.create(name="s")
    await pg.trades.insert_many([make_fill(strategy.id, 0, external_id="paper:7")])
    async with pg.journal(strategy_id=strategy.id, venue="paper", batch_size=1000) as journal:
        client_order_id = await many_fills(journal, 300)
    order = await pg.orders.get_by_client_order_id(client_order_id)
    assert order.filled_quantity == 300
    assert await pg.trades.count() == 300  # 299 of the order's, and the one stored before
