"""Jobs of one stored sweep run batch by batch, as they come: a search's trials.

    async with sweep_runner(db, sweep_id, datasets, writer=writer, workers=2, ...) as runner:
        await runner.run(jobs)  # stored as pending; returns once each is completed or failed

Each batch runs in worker processes as a grid sweep's jobs do (sweep_outcomes.py): its fills
through the one writer, each outcome recorded once its fills are committed. A batch is
recorded as soon as it ends, not gathered for RECORD_EVERY_SECONDS: the search is waiting
for it. A batch stopped part way (Ctrl-C, a cancellation, an error) leaves its unfinished
backtests cancelled and the sweep interrupted, for a resume.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.sweep_outcomes import SweepOutcomes, dump_sweep_file, run_pool
from quantflow_async.backtest.sweep_store import finish_sweep
from quantflow_async.backtest.worker import Job
from quantflow_async.backtest.worker_pool import WorkerPool
from quantflow_async.database import Database
from quantflow_async.ingest.writer import TradeWriter


class SweepRunner:
    """Runs jobs already stored as pending backtests of the sweep; `fills` counts the fills
    of every batch so far."""

    def __init__(
        self,
        db: Database,
        sweep_id: int,
        datasets: Mapping[str, Bars],
        writer: TradeWriter,
        folder: Path,
        *,
        workers: int,
        chunk_size: int,
        start_method: str,
        max_worker_restarts: int,
    ) -> None:
        self._db = db
        self._sweep_id = sweep_id
        self._datasets = datasets
        self._writer = writer
        self._file = folder / "sweep.pickle"
        self._workers = workers
        self._chunk_size = chunk_size
        self._context = multiprocessing.get_context(start_method)
        self._max_worker_restarts = max_worker_restarts
        self.fills = 0

    async def run(self, jobs: Sequence[Job]) -> None:
        """Run `jobs`; return once each is recorded completed or failed."""
        outcomes = SweepOutcomes(self._db, list(jobs), None, self._max_worker_restarts)
        outcomes.record_every = 0.0
        try:
            await anyio.to_thread.run_sync(dump_sweep_file, self._datasets, list(jobs), self._file)
            count = min(self._workers, len(jobs))
            pool = WorkerPool(self._context, count, self._file, self._chunk_size, jobs)
            await run_pool(outcomes, pool, self._writer)
        except BaseException:
            await finish_sweep(self._db, self._sweep_id, "interrupted", outcomes.unfinished())
            raise
        finally:
            self.fills += outcomes.fills


@asynccontextmanager
async def sweep_runner(
    db: Database,
    sweep_id: int,
    datasets: Mapping[str, Bars],
    *,
    writer: TradeWriter,
    workers: int,
    chunk_size: int,
    start_method: str,
    max_worker_restarts: int,
) -> AsyncIterator[SweepRunner]:
    """A runner of the sweep's jobs over `datasets`, for the length of the block."""
    with tempfile.TemporaryDirectory(prefix="quantflow-sweep-") as folder:
        yield SweepRunner(
            db, sweep_id, datasets, writer, Path(folder), workers=workers, chunk_size=chunk_size,
            start_method=start_method, max_worker_restarts=max_worker_restarts,
        )  # fmt: skip
