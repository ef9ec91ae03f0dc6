"""Pipelining on SQLite: while one batch is in flight, the next is sent right behind it, and
every promise holds with two batches in flight. A fault in either is settled as with one batch,
in order; a cancellation drains both; a worker killed between them loses and doubles nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
import psutil
import pytest
from sqlalchemy import text

from quantflow_async import Database, Fill, Settings, WriterOptions
from quantflow_async.ingest.sqlite_worker_main import PAUSE_AFTER_COMMIT_ENV

from ..conftest import T0

BATCH = 100
SENT_BEHIND = "sent behind batch"
SENT_AGAIN = "sent behind one that failed, sent again"
FAST_RETRIES = WriterOptions(
    commit_timeout=2.0, retry_attempts=5, retry_initial_delay=0.01, retry_max_delay=0.05
)


def _fills(strategy_id: int, count: int, *, refused_at: int | None = None) -> list[Fill]:
    """Fills without external ids (one stored twice would show in the count), one second
    apart; the one at `refused_at` has the symbol the trigger refuses."""
    return [
        Fill(
            strategy_id=strategy_id,
            symbol="REFUSED" if n == refused_at else "BTCUSDT",
            side="buy",
            quantity="1",
            price=str(100 + n),
            executed_at=T0 + timedelta(seconds=n),
        )
        for n in range(count)
    ]


@pytest.fixture
def pause_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Touch it, and the worker stops itself after its next COMMIT, before the reply."""
    marker = tmp_path / "pause-once"
    monkeypatch.setenv(PAUSE_AFTER_COMMIT_ENV, str(marker))
    return marker


@pytest.fixture
async def sqlite_db(sqlite_url: str, pause_marker: Path) -> AsyncIterator[Database]:
    async with Database(settings=Settings(database_url=sqlite_url, writer=FAST_RETRIES)) as db:
        await db.migrate()
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON trades WHEN NEW.symbol = 'REFUSED' "
                    "BEGIN SELECT RAISE(ABORT, 'symbol REFUSED is not tradable'); END"
                )
            )
        yield db


@pytest.fixture
async def strategy(sqlite_db: Database) -> int:
    return (await sqlite_db.strategies.create(name="s")).id


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="quantflow_async.ingest")
    return caplog


async def _stopped(pid: int) -> None:
    with anyio.fail_after(30):
        while psutil.Process(pid).status() != psutil.STATUS_STOPPED:
            await anyio.sleep(0.01)


def _status(pid: int) -> str:
    return str(psutil.Process(pid).status())


async def _prices_in_id_order(db: Database) -> list[int]:
    return [int(trade.price) - 100 for trade in await db.trades.list(limit=10_000)]


async def test_a_fault_in_the_first_of_two_batches_in_flight_is_settled_before_the_second(
    sqlite_db: Database, strategy: int, debug_log: pytest.LogCaptureFixture
) -> None:
    fills = _fills(strategy, 2 * BATCH, refused_at=10)
    async with sqlite_db.writer(batch_size=BATCH, max_latency=600) as writer:
        await writer.submit_many(fills)  # both batches queued before the writer's task runs
        await writer.flush()
    stats = writer.stats()
    assert (stats.written, stats.rejected, stats.unwritten) == (2 * BATCH - 1, 1, 0)
    assert [rejection.fill for rejection in writer.rejected] == [fills[10]]
    assert SENT_BEHIND in debug_log.text and SENT_AGAIN in debug_log.text
    # The second batch went in after every good fill of the first: one producer's order.
    assert await _prices_in_id_order(sqlite_db) == [n for n in range(2 * BATCH) if n != 10]


async def test_a_fault_in_the_second_of_two_batches_in_flight_leaves_the_first_committed(
    sqlite_db: Database, strategy: int, debug_log: pytest.LogCaptureFixture
) -> None:
    fills = _fills(strategy, 2 * BATCH, refused_at=BATCH + 10)
    async with sqlite_db.writer(batch_size=BATCH, max_latency=600) as writer:
        await writer.submit_many(fills)
        await writer.flush()
    stats = writer.stats()
    assert (stats.written, stats.rejected, stats.unwritten) == (2 * BATCH - 1, 1, 0)
    assert [rejection.fill for rejection in writer.rejected] == [fills[BATCH + 10]]
    assert SENT_BEHIND in debug_log.text
    assert await _prices_in_id_order(sqlite_db) == [n for n in range(2 * BATCH) if n != BATCH + 10]


async def test_a_worker_killed_between_two_batches_in_flight_stores_each_once(
    sqlite_db: Database, strategy: int, pause_marker: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    async with sqlite_db.writer(batch_size=BATCH, max_latency=600) as writer:
        worker = writer.connection_pid
        assert worker is not None
        pause_marker.touch()  # the first batch commits; its worker stops before the reply
        await writer.submit_many(_fills(strategy, 2 * BATCH))
        async with anyio.create_task_group() as group:
            group.start_soon(writer.flush)
            await _stopped(worker)
            assert SENT_BEHIND in debug_log.text  # the second batch waits in the worker's pipe
            assert await sqlite_db.trades.count() == BATCH
            os.kill(worker, signal.SIGKILL)
        assert writer.connection_pid != worker
    stats = writer.stats()
    assert (stats.written, stats.duplicates, stats.unwritten) == (2 * BATCH, 0, 0)
    assert await _prices_in_id_order(sqlite_db) == list(range(2 * BATCH))


async def test_task_cancel_with_two_batches_in_flight_drains_both_once(
    sqlite_db: Database, strategy: int, pause_marker: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    async with sqlite_db.writer(batch_size=BATCH, max_latency=600) as writer:
        worker = writer.connection_pid
        assert worker is not None
        pause_marker.touch()
        await writer.submit_many(_fills(strategy, 2 * BATCH))
        flushing = asyncio.ensure_future(writer.flush())
        await _stopped(worker)
        assert SENT_BEHIND in debug_log.text
        (own_task,) = [t for t in asyncio.all_tasks() if "TradeWriter._run" in t.get_name()]
        own_task.cancel()  # a second Ctrl-C: asyncio's own cancellation of the writer's task
        with anyio.fail_after(30):
            await flushing
    stats = writer.stats()
    assert (stats.written, stats.duplicates, stats.unwritten) == (2 * BATCH, 0, 0)
    assert await _prices_in_id_order(sqlite_db) == list(range(2 * BATCH))


async def test_cancelling_the_owner_with_two_batches_in_flight_drains_both_once(
    sqlite_db: Database, strategy: int, pause_marker: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    with anyio.CancelScope() as owner:
        async with sqlite_db.writer(batch_size=BATCH, max_latency=600) as writer:
            worker = writer.connection_pid
            assert worker is not None
            pause_marker.touch()
            await writer.submit_many(_fills(strategy, 2 * BATCH))
            flushing = asyncio.ensure_future(writer.flush())
            await _stopped(worker)
            assert SENT_BEHIND in debug_log.text
            owner.cancel()  # the drain meets the stopped worker: commit_timeout drops it
            await anyio.sleep(600)
    assert owner.cancelled_caught
    assert flushing.done() and flushing.exception() is None
    stats = writer.stats()
    assert (stats.written, stats.duplicates, stats.unwritten) == (2 * BATCH, 0, 0)
    assert await _prices_in_id_order(sqlite_db) == list(range(2 * BATCH))


async def test_a_worker_killed_after_committing_the_batch_sent_behind_stores_it_once(
    sqlite_db: Database, strategy: int, pause_marker: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    async with sqlite_db.writer(batch_size=BATCH, max_latency=600) as writer:
        worker = writer.connection_pid
        assert worker is not None
        pause_marker.touch()
        await writer.submit_many(_fills(strategy, 2 * BATCH))
        async with anyio.create_task_group() as group:
            group.start_soon(writer.flush)
            await _stopped(worker)  # after the first batch's COMMIT
            assert SENT_BEHIND in debug_log.text
            pause_marker.touch()  # and now after the second's
            os.kill(worker, signal.SIGCONT)
            with anyio.fail_after(30):
                while pause_marker.exists() or _status(worker) != psutil.STATUS_STOPPED:
                    await anyio.sleep(0.01)
            assert await sqlite_db.trades.count() == 2 * BATCH  # committed; no reply left
            os.kill(worker, signal.SIGKILL)
        assert writer.connection_pid != worker
    stats = writer.stats()
    assert (stats.written, stats.duplicates, stats.unwritten) == (2 * BATCH, 0, 0)
    assert await _prices_in_id_order(sqlite_db) == list(range(2 * BATCH))
