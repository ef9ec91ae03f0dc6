"""On a SQLite file the journal's batches are committed by a worker process of its own. A
worker killed at any moment loses nothing and doubles nothing: the batch is run again by a
new worker, and every statement in it is idempotent."""

from __future__ import annotations

import logging
import os
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from quantflow_async import Database, Settings, WriterOptions
from quantflow_async.ingest.sqlite_worker_main import PAUSE_AFTER_COMMIT_ENV
from quantflow_async.live.journal import OrderJournal
from quantflow_async.live.orders import OrderRequest

from .journal_support import open_order, trade

STORES_LOG = "quantflow_async.ingest.journal_stores"
BUY = OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal(1))

FAST_RETRIES = WriterOptions(retry_attempts=5, retry_initial_delay=0.01, retry_max_delay=0.05)


async def stopped(pid: int) -> None:
    with anyio.fail_after(30):
        while psutil.Process(pid).status() != psutil.STATUS_STOPPED:
            await anyio.sleep(0.01)


async def gone(pid: int) -> None:
    with anyio.fail_after(30):
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            await anyio.sleep(0.01)


async def fill_in_four(journal: OrderJournal, first_trade: int) -> str:
    """An order opened, then filled in four trades; its client order id."""
    order = await open_order(journal, "1")
    for n in range(4):
        await journal.filled(trade(order, str(first_trade + n), "0.25"))
    return order.client_order_id


async def check_stored_once(db: Database, client_order_ids: list[str]) -> None:
    for cid in client_order_ids:
        order = await db.orders.get_by_client_order_id(cid)
        assert (order.status, order.filled_quantity) == ("filled", 1)
        kinds = [event.kind for event in await db.orders.events(order.id)]
        assert kinds == ["intent", "submitted", "acknowledged", "fill", "fill", "fill", "fill"]
    assert await db.trades.count() == 4 * len(client_order_ids)
    (position,) = await db.orders.positions()
    assert position.quantity == len(client_order_ids)


@pytest.fixture
async def file_db(tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'journal.sqlite3'}"
    async with Database(settings=Settings(database_url=url, writer=FAST_RETRIES)) as db:
        await db.migrate()
        yield db


async def test_the_worker_is_a_process_of_its_own_that_ends_with_the_journal(
    file_db: Database,
) -> None:
    strategy = await file_db.strategies.create(name="s")
    async with file_db.journal(strategy_id=strategy.id, venue="paper") as journal:
        await fill_in_four(journal, 1)
        await journal.flush()
        worker = journal.connection_pid
        assert worker is not None and worker != os.getpid()
    assert journal.connection_pid is None
    await gone(worker)


async def test_a_worker_killed_between_commit_and_reply_stores_the_batch_once(
    file_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pause-once"
    monkeypatch.setenv(PAUSE_AFTER_COMMIT_ENV, str(marker))
    strategy = await file_db.strategies.create(name="s")
    async with file_db.journal(strategy_id=strategy.id, venue="paper") as journal:
        first = await fill_in_four(journal, 1)
        await journal.flush()
        worker = journal.connection_pid
        assert worker is not None
        marker.touch()  # the next commit stops its worker before the reply
        second = await fill_in_four(journal, 11)
        async with anyio.create_task_group() as group:
            group.start_soon(journal.flush)
            await stopped(worker)
            os.kill(worker, signal.SIGKILL)
        assert journal.connection_pid not in (None, worker)
        assert journal.stats().duplicates == 0
    await check_stored_once(file_db, [first, second])


async def test_a_worker_killed_while_idle_is_replaced_at_the_next_batch(
    file_db: Database,
) -> None:
    strategy = await file_db.strategies.create(name="s")
    async with file_db.journal(strategy_id=strategy.id, venue="paper") as journal:
        first = await fill_in_four(journal, 1)
        await journal.flush()
        worker = journal.connection_pid
        assert worker is not None
        os.kill(worker, signal.SIGKILL)
        await gone(worker)
        second = await fill_in_four(journal, 11)
        await journal.flush()
    await check_stored_once(file_db, [first, second])


async def test_a_worker_killed_with_a_batch_sent_behind_runs_both_again_in_order(
    file_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """The worker goes from one batch to the next sent right behind it; killed after the first
    commits, the new worker runs both again, in their order, and nothing is doubled."""
    caplog.set_level(logging.DEBUG, logger=STORES_LOG)
    marker = tmp_path / "pause-once"
    monkeypatch.setenv(PAUSE_AFTER_COMMIT_ENV, str(marker))
    strategy = await file_db.strategies.create(name="s")
    async with file_db.journal(strategy_id=strategy.id, venue="paper", batch_size=2) as journal:
        first = await fill_in_four(journal, 1)
        await journal.flush()
        worker = journal.connection_pid
        assert worker is not None
        marker.touch()  # the next commit stops its worker before the reply
        later = [await fill_in_four(journal, 10 * n) for n in range(1, 4)]
        async with anyio.create_task_group() as group:
            group.start_soon(journal.flush)
            await stopped(worker)
            os.kill(worker, signal.SIGKILL)
        assert journal.connection_pid not in (None, worker)
        assert journal.stats().duplicates == 0
    assert "sent behind" in caplog.text
    await check_stored_once(file_db, [first, *later])


async def test_a_batch_sent_behind_a_refused_claim_is_written_after_it(
    file_db: Database, caplog: Any
) -> None:
    """A claim found held by another order is settled and its batch sent again; the batch
    sent behind it, which the worker left alone, goes after it."""
    caplog.set_level(logging.DEBUG, logger=STORES_LOG)
    holder = await file_db.strategies.create(name="holder")
    async with file_db.journal(strategy_id=holder.id, venue="paper") as journal:
        await open_order(journal, venue_id="7")
    strategy = await file_db.strategies.create(name="s")
    async with file_db.journal(strategy_id=strategy.id, venue="paper", batch_size=1) as journal:
        other = await open_order(journal, venue_id="9")
        order = await journal.intend(BUY)
        await journal.acknowledged(order.client_order_id, "7")  # refused at its commit
        for n in range(3):
            await journal.filled(trade(other, f"t{n}", "0.25"))
        await journal.flush()
        assert journal.stats().refused == 1
    assert "sent behind" in caplog.text

    refused = await file_db.orders.get_by_client_order_id(order.client_order_id)
    assert refused.status == "unknown"
    refusal = (await file_db.orders.events(refused.id))[-1]
    assert refusal.kind == "refused"
    filled = await file_db.orders.get_by_client_order_id(other.client_order_id)
    assert filled.filled_quantity == Decimal("0.75")
    events = await file_db.orders.events(filled.id)
    assert [event.kind for event in events][-3:] == ["fill", "fill", "fill"]
    assert refusal.id < events[-3].id
