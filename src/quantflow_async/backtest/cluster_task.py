"""What a cluster sweep's Dask tasks run on the workers: a data set held as a task's result,
and one backtest, run and stored from the worker with a Database and a writer of its own."""

from __future__ import annotations

from typing import Any

import anyio

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.conversion import error_document, fill_chunks, results_document
from quantflow_async.backtest.engine import BacktestResult
from quantflow_async.backtest.worker import Job
from quantflow_async.config import Settings
from quantflow_async.database import Database
from quantflow_async.errors import InvalidTransition

# What a task returns, kind first:
#   ("completed", metrics, results)
#   ("failed", error document)     the strategy raised
#   ("stopped",)                   the backtest was finished elsewhere (cancelled) first
Outcome = tuple[Any, ...]


def data_task(bars: Bars) -> Bars:
    """A Dask task: the data set it was given, held on the cluster as a result."""
    return bars


def backtest_task(settings: Settings, job: Job, bars: Bars, chunk_size: int) -> Outcome:
    """A Dask task: one backtest run and stored from a worker's thread, with an event loop,
    a Database and a writer of its own, all closed before it returns."""
    return anyio.run(_run_and_store, settings, job, bars, chunk_size)


async def _run_and_store(settings: Settings, job: Job, bars: Bars, chunk_size: int) -> Outcome:
    # A Database per task rather than one kept per worker: nothing is left open on a worker
    # between tasks, and a task Dask runs again (its worker was lost) starts from nothing.
    # Opening one costs a few milliseconds beside a backtest's run.
    async with Database(settings=settings) as db:
        if not await _start(db, job.backtest_id):
            return ("stopped",)
        try:
            result = await anyio.to_thread.run_sync(job.spec.run, bars)
        except Exception as exc:  # the strategy's error becomes the failed backtest's results
            return ("failed", error_document(exc))
        if not await _store_fills(db, job, result, chunk_size):
            return ("stopped",)
        return ("completed", result.metrics, results_document(result))


async def _start(db: Database, backtest_id: int) -> bool:
    """Mark the backtest running; False if it was finished (cancelled) before it could start."""
    backtest = await db.backtests.get(backtest_id)
    if backtest.status == "running":  # run again by Dask: carry on where it left off
        return True
    try:
        await db.backtests.set_status(backtest_id, "running")
    except InvalidTransition:
        return False
    return True


async def _store_fills(db: Database, job: Job, result: BacktestResult, chunk_size: int) -> bool:
    """Write the run's fills chunk by chunk; False once the backtest was cancelled (the fills
    submitted until then are committed as the writer closes)."""
    chunks = fill_chunks(
        result, strategy_id=job.strategy_id, backtest_id=job.backtest_id, size=chunk_size
    )
    # Room for two chunks: the writer commits one while the next is made, and a backtest
    # cancelled meanwhile stores a few more chunks at most, not the rest of its run.
    max_queue = min(db.settings.writer.max_queue, 2 * chunk_size)
    async with db.writer(max_queue=max_queue) as writer:
        while chunk := await anyio.to_thread.run_sync(next, chunks, None):  # Fills made off-loop
            # Dask cannot stop a task that is running: the task looks for itself.
            if (await db.backtests.get(job.backtest_id)).status == "cancelled":
                return False
            await writer.submit_many(chunk)
    return True
