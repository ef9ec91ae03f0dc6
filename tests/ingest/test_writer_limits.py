"""Bounds the writer keeps: no commit runs past `commit_timeout`, opening fails with our own
error, closing works from any task and around forked processes, and a producer that never
waits still lets the event loop run."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import warnings
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from quantflow_async import (
    Database,
    Settings,
    StorageUnavailable,
    WriterOptions,
)
from quantflow_async.ingest import writer as writer_module
from quantflow_async.store.engine import write_transaction

from ..conftest import make_fill
from ..support.faults import alive
from ..support.loop_turns import loop_turns_counted

BOUNDED = WriterOptions(
    commit_timeout=1.0, retry_attempts=20, retry_initial_delay=0.01, retry_max_delay=0.1
)


async def test_flush_returns_though_the_sqlite_worker_is_stopped(sqlite_url: str) -> None:
    async with Database(settings=Settings(database_url=sqlite_url, writer=BOUNDED)) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        async with db.writer(max_latency=0) as writer:
            await writer.submit(make_fill(strategy_id, 0), wait=True)
            stopped = writer.connection_pid
            assert stopped is not None
            os.kill(stopped, signal.SIGSTOP)
            await writer.submit_many(
                make_fill(strategy_id, n, external_id=None) for n in range(1, 500)
            )
            with anyio.fail_after(30):
                await writer.flush()
            assert writer.connection_pid != stopped
        assert await db.trades.count() == 500
        assert not alive(stopped)


@pytest.mark.slow  # waits out the 2 s of move_on_after by design
async def test_aclose_inside_move_on_after_finishes_though_the_worker_is_stopped(
    sqlite_url: str,
) -> None:
    async with Database(settings=Settings(database_url=sqlite_url, writer=BOUNDED)) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        with anyio.move_on_after(2):
            async with db.writer(max_latency=0) as writer:
                await writer.submit(make_fill(strategy_id, 0), wait=True)
                os.kill(writer.connection_pid or 0, signal.SIGSTOP)
                await writer.submit_many(make_fill(strategy_id, n) for n in range(1, 300))
                await anyio.sleep(600)
        assert writer.unwritten == ()
        assert await db.trades.count() == 300


@pytest.mark.slow  # waits out commit_timeout, then the retries
async def test_a_commit_blocked_past_commit_timeout_is_abandoned_and_retried(
    db: Database, strategy_id: int
) -> None:
    """Another connection holds the lock the writer needs for longer than commit_timeout."""
    settings = Settings(database_url=db.settings.database_url, writer=BOUNDED)
    locked = anyio.Event()

    async def hold_the_lock(seconds: float) -> None:
        async with write_transaction(db.engine) as conn:
            if db.engine.dialect.name == "postgresql":
                await conn.execute(text("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            await anyio.sleep(seconds)

    async with Database(settings=settings) as bounded, anyio.create_task_group() as group:
        group.start_soon(hold_the_lock, 2.5)  # two commit attempts time out meanwhile
        await locked.wait()
        async with bounded.writer(max_latency=0) as writer:
            fills = [make_fill(strategy_id, n, external_id=None) for n in range(100)]
            await writer.submit_many(fills)
            with anyio.fail_after(30):
                await writer.flush()
        assert await bounded.trades.count() == 100
        assert writer.stats().written == 100


async def test_a_writer_that_cannot_open_raises_our_error_not_a_group(tmp_path: Path) -> None:
    path = tmp_path / "gone.sqlite3"
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        await db.migrate()
        path.unlink()
        writer = db.writer()
        with pytest.raises(StorageUnavailable, match="removed or replaced"):
            async with writer:
                pass
        with anyio.fail_after(10):
            await writer.aclose()  # nothing to drain; returns
    assert not path.exists()  # the worker never made a stray file in its place


async def test_a_writer_on_a_server_that_is_down_raises_our_error_not_a_group() -> None:
    with anyio.fail_after(60):
        async with Database("postgresql+asyncpg://postgres@127.0.0.1:9/none") as db:
            with pytest.raises(StorageUnavailable, match="cannot be reached"):
                async with db.writer():
                    pass


async def test_a_relative_path_stays_the_file_opened_after_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(first)
    async with Database("sqlite+aiosqlite:///./dev.sqlite3") as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        monkeypatch.chdir(elsewhere)
        async with db.writer(max_latency=0) as writer:  # a worker started after the chdir
            await writer.submit_many(make_fill(strategy_id, n) for n in range(1000))
            await writer.flush()
            os.kill(writer.connection_pid or 0, signal.SIGKILL)  # and one restarted after it
            await writer.submit_many(make_fill(strategy_id, n) for n in range(1000, 1100))
        assert await db.trades.count() == 1100
    assert not (elsewhere / "dev.sqlite3").exists()


def _fork_pool() -> multiprocessing.pool.Pool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
        return multiprocessing.get_context("fork").Pool(2)


async def test_a_process_pool_forked_while_the_writer_runs_does_not_hold_it_open(
    db: Database, strategy_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with db.writer(max_latency=0) as writer:
        await writer.submit(make_fill(strategy_id, 0), wait=True)
        pool = _fork_pool()  # its children inherit the writer's pipes
        try:
            assert pool.apply(os.getpid) != os.getpid()
            await writer.aclose()  # while the children still hold them
        finally:
            pool.terminate()
            pool.join()
    # The worker stopped when asked, instead of being killed after its grace period.
    assert "did not stop" not in caplog.text
    assert await db.trades.count() == 1


async def test_a_producer_that_never_waits_still_lets_other_tasks_run(
    db: Database, strategy_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "YIELD_EVERY_SECONDS", 0.0)  # yield at every look
    fills = [make_fill(strategy_id, n, external_id=None) for n in range(2000)]
    async with db.writer(max_queue=10_000, batch_size=10_000, max_latency=600) as writer:
        async with loop_turns_counted() as turns:
            before = turns.count
            for fill in fills:  # the loop a user writes first
                await writer.submit(fill)
            during = turns.count - before
    assert during >= len(fills) // 64
