"""Faults that reach the writer's own task or its connection at the worst moment: asyncio's
Task.cancel() of the task itself (what asyncio.run does to every task after a second Ctrl-C),
a cancellation while the writer opens, a worker killed while it starts, a COMMIT slower than
commit_timeout. None of them loses a fill, stores one twice, or leaves the writer hanging."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import psutil
import pytest
from sqlalchemy import text

from quantflow_async import (
    Database,
    Fill,
    QueueFull,
    Settings,
    TradeWriter,
    WriterClosed,
    WriterFailed,
    WriterOptions,
)
from quantflow_async.ingest.sqlite_worker_main import PAUSE_AT_START_ENV
from tests.conftest import POSTGRES_ROUND_IN_CI

from ..support.faults import alive

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FAST = WriterOptions(retry_attempts=20, retry_initial_delay=0.01, retry_max_delay=0.05)


def _fills(strategy_id: int, count: int) -> list[Fill]:
    """Fills without external ids: one stored twice would show in the count."""
    return [
        Fill(
            strategy_id=strategy_id,
            symbol="BTCUSDT",
            side="buy",
            quantity="1",
            price="100",
            executed_at=T0 + timedelta(seconds=n),
        )
        for n in range(count)
    ]


def _writer_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if "TradeWriter._run" in task.get_name()]


@POSTGRES_ROUND_IN_CI
async def test_task_cancel_of_the_writers_own_task_loses_and_doubles_nothing(
    database_url: str,
) -> None:
    chance = random.Random(7)
    async with Database(settings=Settings(database_url=database_url, writer=FAST)) as db:
        await db.migrate()
        for round_ in range(8):
            strategy_id = (await db.strategies.create(name=f"round-{round_}")).id
            fills = _fills(strategy_id, 300)
            writer = db.writer(batch_size=50, max_latency=0, max_queue=20)

            async def owner(writer: TradeWriter = writer, fills: list[Fill] = fills) -> None:
                async with writer:
                    # Cancelled, the writer drains and closes: later submits are refused.
                    with contextlib.suppress(WriterClosed):
                        await writer.submit_many(fills)

            task = asyncio.ensure_future(owner())
            await asyncio.sleep(chance.uniform(0.01, 0.2))
            for _ in range(chance.randint(1, 3)):
                for writer_task in _writer_tasks():
                    writer_task.cancel()
                await asyncio.sleep(chance.choice([0, 0.001, 0.01]))
            with anyio.fail_after(60):
                try:
                    await task
                except (WriterFailed, asyncio.CancelledError):
                    pass
            stats = writer.stats()
            stored = await db.trades.count(strategy_id=strategy_id)
            assert stats.written == stored, stats
            assert stored + stats.unwritten + stats.queue_depth <= len(fills)
            assert stats.submitted == stats.written + stats.duplicates + stats.unwritten


@pytest.mark.parametrize("then", ["submit until full", "submit_nowait", "flush", "close"])
async def test_a_writer_task_cancelled_before_its_first_step_still_drains(
    database_url: str, then: str
) -> None:
    async with Database(settings=Settings(database_url=database_url, writer=FAST)) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        fills = _fills(strategy_id, 300)
        writer = db.writer(batch_size=50, max_latency=0, max_queue=20)
        with anyio.fail_after(60):
            async with writer:
                writer.submit_nowait(fills[0])
                (task,) = _writer_tasks()  # made, but it has not run a step yet
                task.cancel()  # it never will: its coroutine is closed before it starts
                if then == "submit until full":
                    with pytest.raises(WriterClosed):  # taken as a request to close
                        await writer.submit_many(fills[1:])
                elif then == "submit_nowait":
                    with pytest.raises(WriterClosed):
                        for fill in fills[1:]:  # a producer that never waits on the writer
                            while True:
                                try:
                                    writer.submit_nowait(fill)
                                    break
                                except QueueFull:
                                    await anyio.sleep(0.01)
                elif then == "flush":
                    await writer.flush()
        stats = writer.stats()
        stored = await db.trades.count(strategy_id=strategy_id)
        assert stored == stats.written == stats.submitted >= 1, stats


async def test_aclose_from_another_task_while_the_writer_opens_leaves_it_closed(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pause-at-start"
    marker.touch()  # the writer's worker stops as it starts: the writer is still opening
    monkeypatch.setenv(PAUSE_AT_START_ENV, str(marker))
    async with Database(settings=Settings(database_url=sqlite_url, writer=FAST)) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        writer = db.writer(max_latency=0)

        async def open_then_submit() -> None:
            async with writer:
                with pytest.raises(WriterClosed):
                    await writer.submit_many(_fills(strategy_id, 10))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(open_then_submit)
                starting = None
                while starting is None:
                    starting = next(
                        (c for c in psutil.Process().children() if c.status() == "stopped"), None
                    )
                    await anyio.sleep(0.01)
                tasks.start_soon(writer.aclose)
                await anyio.sleep(0.1)  # aclose is waiting for the writer
                starting.resume()  # the worker starts and the writer finishes opening
        stats = writer.stats()
        assert stats.submitted == stats.written == 0, stats
        assert await db.trades.count() == 0


async def test_a_cancellation_while_the_writer_opens_never_strands_it(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        for delay in (0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1):
            opened: list[int | None] = []
            with anyio.fail_after(60):
                with anyio.move_on_after(delay):
                    async with db.writer(max_latency=0) as writer:
                        opened.append(writer.connection_pid)
                        await writer.submit_many(_fills(strategy_id, 10))
                        await anyio.sleep(600)
            if db.engine.dialect.name == "sqlite" and opened and opened[0] is not None:
                assert not alive(opened[0])
        assert await db.trades.count() % 10 == 0  # whole submissions only, each once


async def test_a_sqlite_worker_killed_while_it_starts_is_a_passing_fault(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pause-at-start"
    monkeypatch.setenv(PAUSE_AT_START_ENV, str(marker))
    async with Database(settings=Settings(database_url=sqlite_url, writer=FAST)) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        fills = _fills(strategy_id, 1000)
        async with db.writer(max_latency=0) as writer:
            await writer.submit_many(fills[:500])
            await writer.flush()
            marker.touch()  # the next worker stops as it starts
            os.kill(writer.connection_pid or 0, signal.SIGKILL)
            await writer.submit_many(fills[500:])
            with anyio.fail_after(30):
                starting = None
                while starting is None:
                    starting = next(
                        (
                            child
                            for child in psutil.Process().children()
                            if child.status() == psutil.STATUS_STOPPED
                        ),
                        None,
                    )
                    await anyio.sleep(0.01)
            starting.kill()
            with anyio.fail_after(30):
                await writer.flush()
        assert await db.trades.count() == 1000
        assert writer.stats().written == 1000


@pytest.mark.postgres
async def test_a_postgres_commit_slower_than_commit_timeout_is_stored_once(
    postgres_database_url: str,
) -> None:
    bounded = WriterOptions(
        commit_timeout=1.0, retry_attempts=5, retry_initial_delay=0.01, retry_max_delay=0.05
    )
    settings = Settings(database_url=postgres_database_url, writer=bounded)
    async with Database(settings=settings) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        async with db.engine.begin() as conn:
            # The first row ever checked makes its COMMIT take 3 s (a sequence is not undone
            # by a rollback, so only one COMMIT is slow), as a stalled standby or disk would.
            await conn.execute(text("CREATE SEQUENCE slow_once"))
            await conn.execute(
                text(
                    "CREATE FUNCTION slow_commit() RETURNS trigger AS $$ BEGIN "
                    "IF nextval('slow_once') = 1 THEN PERFORM pg_sleep(3); END IF; "
                    "RETURN NULL; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON trades "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
                )
            )
        async with db.writer(batch_size=1000, max_latency=600) as writer:
            await writer.submit_many(_fills(strategy_id, 1000))
            with anyio.fail_after(60):
                await writer.flush()
        assert await db.trades.count() == 1000
        assert writer.stats().written == 1000


async def test_closing_beside_a_stopped_idle_worker_takes_no_longer_than_commit_timeout(
    sqlite_url: str,
) -> None:
    bounded = WriterOptions(commit_timeout=1.0)
    async with Database(settings=Settings(database_url=sqlite_url, writer=bounded)) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        with anyio.fail_after(8):  # the old fixed grace was 10 s
            async with db.writer(max_latency=0) as writer:
                await writer.submit_many(_fills(strategy_id, 10))
                await writer.flush()
                stopped = writer.connection_pid or 0
                os.kill(stopped, signal.SIGSTOP)
        assert not alive(stopped)
        assert await db.trades.count() == 10
