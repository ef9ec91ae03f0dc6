"""Cancelling the scope that owns a writer, whichever library cancels: the queue is drained
first, the writer's own task is never cancelled by it, and a fill is handed back in
`unwritten` only if it was not committed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from quantflow_async import Database

from ..conftest import POSTGRES_ROUND_IN_CI, make_fill

QUEUED = 10_000
COUNT_CTRL_C = 5_000


async def _queue_then_block(db: Database, strategy_id: int, queued: list[object]) -> None:
    """Queue QUEUED fills that no batch is due for yet, then wait to be cancelled."""
    async with db.writer(batch_size=QUEUED * 2, max_latency=600, max_queue=QUEUED) as writer:
        for n in range(QUEUED):
            writer.submit_nowait(make_fill(strategy_id, n))
        queued.append(writer)
        await anyio.sleep(600)


def _writer_of(queued: list[object]) -> object:
    assert len(queued) == 1
    return queued[0]


async def _once_queued(queued: list[object], expire: Callable[[], None]) -> None:
    """Let the deadline pass only once every fill is queued, however slowly the writer opens."""
    with anyio.fail_after(60):
        while not queued:
            await anyio.sleep(0.01)
    expire()


async def test_asyncio_timeout_around_the_block_drains_first(
    db: Database, strategy_id: int
) -> None:
    queued: list[object] = []
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(600) as timeout:
            expiry = asyncio.ensure_future(
                _once_queued(queued, lambda: timeout.reschedule(loop.time()))
            )
            await _queue_then_block(db, strategy_id, queued)
    await expiry
    assert await db.trades.count() == QUEUED
    assert _writer_of(queued).unwritten == ()  # type: ignore[attr-defined]


async def test_anyio_move_on_after_around_the_block_drains_first(
    db: Database, strategy_id: int
) -> None:
    queued: list[object] = []
    with anyio.move_on_after(600) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(_once_queued, queued, scope.cancel)
            await _queue_then_block(db, strategy_id, queued)
    assert scope.cancelled_caught
    assert await db.trades.count() == QUEUED
    writer = _writer_of(queued)
    assert writer.unwritten == ()  # type: ignore[attr-defined]
    assert writer.stats().written == QUEUED  # type: ignore[attr-defined]


async def test_anyio_fail_after_around_the_block_drains_then_raises(
    db: Database, strategy_id: int
) -> None:
    queued: list[object] = []

    def expire(scope: anyio.CancelScope) -> None:
        scope.deadline = anyio.current_time()

    with pytest.raises(TimeoutError):
        with anyio.fail_after(600) as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(_once_queued, queued, lambda: expire(scope))
                await _queue_then_block(db, strategy_id, queued)
    assert await db.trades.count() == QUEUED


async def test_a_failing_sibling_in_a_task_group_lets_the_writer_drain(
    db: Database, strategy_id: int
) -> None:
    queued: list[object] = []

    async def failing_sibling() -> None:
        while not queued:
            await anyio.sleep(0.01)
        raise RuntimeError("the feed broke")

    with pytest.raises(ExceptionGroup) as raised:
        async with anyio.create_task_group() as group:
            group.start_soon(_queue_then_block, db, strategy_id, queued)
            group.start_soon(failing_sibling)
    assert raised.group_contains(RuntimeError, match="the feed broke")
    assert await db.trades.count() == QUEUED


@POSTGRES_ROUND_IN_CI
async def test_cancelled_mid_batch_the_batch_is_stored_once_and_not_handed_back(
    db: Database, strategy_id: int
) -> None:
    fills = [make_fill(strategy_id, n, external_id=None) for n in range(50_000)]
    in_flight = anyio.Event()

    async def bot() -> None:
        async with db.writer(batch_size=25_000, max_latency=0, max_queue=50_000) as writer:
            holder.append(writer)
            for fill in fills:
                writer.submit_nowait(fill)
            while writer.stats().queue_depth == len(fills):  # the writer took its first batch
                await anyio.lowlevel.checkpoint()
            in_flight.set()
            await anyio.sleep(600)

    holder: list[object] = []
    async with anyio.create_task_group() as group:
        group.start_soon(bot)
        await in_flight.wait()
        group.cancel_scope.cancel()
    writer = holder[0]
    assert writer.unwritten == ()  # type: ignore[attr-defined]
    # Without external ids, a fill both stored and handed back would be stored twice on resubmit.
    assert await db.trades.count() == len(fills)


async def test_a_second_cancellation_during_the_drain_does_not_orphan_the_writer(
    db: Database, strategy_id: int
) -> None:
    queued: list[object] = []
    task = asyncio.ensure_future(_queue_then_block(db, strategy_id, queued))
    while not queued:
        await asyncio.sleep(0.01)
    task.cancel()  # the first Ctrl-C
    await asyncio.sleep(0)
    task.cancel()  # a second one, while the queue drains
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    writer = _writer_of(queued)
    stats = writer.stats()  # type: ignore[attr-defined]
    assert (stats.written, stats.queue_depth, writer.unwritten) == (QUEUED, 0, ())  # type: ignore[attr-defined]
    assert await db.trades.count() == QUEUED


async def test_aclose_from_another_task_drains_and_the_owner_then_leaves_cleanly(
    db: Database, strategy_id: int
) -> None:
    closed = anyio.Event()
    async with db.writer(batch_size=1000, max_latency=600) as writer:
        for n in range(100):
            writer.submit_nowait(make_fill(strategy_id, n))

        async def closer() -> None:
            await writer.aclose()
            closed.set()

        async with anyio.create_task_group() as group:
            group.start_soon(closer)
        assert closed.is_set()
        assert await db.trades.count() == 100
    assert writer.stats().written == 100


def test_ctrl_c_twice_under_asyncio_run_still_drains_every_fill(sqlite_url: str) -> None:
    """The first Ctrl-C cancels the program's main task; asyncio turns the second into a
    KeyboardInterrupt and cancels every task, the writer's included. Both wait for the drain.
    The worker is stopped while the keys are pressed, so both land while a batch is in flight."""
    strategy_id = asyncio.run(_migrated_with_a_strategy(sqlite_url))
    script = Path(__file__).with_name("ctrl_c_child.py")
    # -X faulthandler: if the program ever hangs, SIGABRT makes it print every thread's stack.
    command = [sys.executable, "-X", "faulthandler", str(script), sqlite_url, str(strategy_id)]
    command.append(str(COUNT_CTRL_C))
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        worker = int(child.stdout.readline().split()[1])
        os.kill(worker, signal.SIGSTOP)
        for _ in range(2):
            child.send_signal(signal.SIGINT)
            time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):  # the writer may have replaced it
            os.kill(worker, signal.SIGCONT)
        try:
            _, stderr = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)
            _, stderr = child.communicate(timeout=30)
            pytest.fail(f"the program did not end after Ctrl-C twice:\n{stderr[-8000:]}")
    assert "KeyboardInterrupt" in stderr
    # Each fill once: none has an external_id, so a batch stored twice would show.
    assert asyncio.run(_count(sqlite_url)) == COUNT_CTRL_C


async def _migrated_with_a_strategy(url: str) -> int:
    async with Database(url) as db:
        await db.migrate()
        return (await db.strategies.create(name="s")).id


async def _count(url: str) -> int:
    async with Database(url) as db:
        return await db.trades.count()
