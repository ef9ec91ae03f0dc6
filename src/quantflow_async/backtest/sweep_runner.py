"""Jobs of one stored sweep run batch by batch, as they come: a search's trials.

    async with sweep_runner(db, sweep_id, datasets, writer=writer, workers=2, ...) as runner:
        await runner.run(jobs)  # stored as pending; returns once each is completed or failed

The worker processes start once, with the block, and wait for each batch: a job added once
they run travels down its worker's pipe itself (the sweep file holds only the data sets).
Outcomes are recorded as a grid sweep's are (sweep_outcomes.py), each once its fills are
committed, but as soon as a batch ends, not gathered for RECORD_EVERY_SECONDS: the search is
waiting for them. A dead worker is replaced, up to `max_worker_restarts` times. A block
stopped part way (Ctrl-C, a cancellation, an error) stops the workers and leaves the
unfinished backtests cancelled and the sweep interrupted, for a resume.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import anyio

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.sweep_folder import sweep_folder
from quantflow_async.backtest.sweep_outcomes import SweepOutcomes, dump_sweep_file, run_pool
from quantflow_async.backtest.sweep_store import finish_sweep
from quantflow_async.backtest.worker import Job
from quantflow_async.backtest.worker_pool import WorkerPool
from quantflow_async.database import Database
from quantflow_async.errors import BacktestError
from quantflow_async.ingest.writer import TradeWriter


class SweepRunner:
    """Runs jobs already stored as pending backtests of the sweep, in the runner's workers."""

    def __init__(self, outcomes: SweepOutcomes, pool: WorkerPool) -> None:
        self._outcomes = outcomes
        self._pool = pool

    @property
    def fills(self) -> int:
        """The fills of every job run so far, handed to the writer."""
        return self._outcomes.fills

    async def run(self, jobs: Sequence[Job]) -> None:
        """Run `jobs`; return once each is recorded completed or failed."""
        self._outcomes.add(jobs)
        self._pool.add(jobs)
        await self._outcomes.wait_for([job.backtest_id for job in jobs])
        if self._outcomes.stopped:
            # The pool stopped on an error (a storage failure, a script run again), which
            # cancels this block and is what it raises: a BacktestError of its own beside it
            # would hide it in an ExceptionGroup.
            await anyio.sleep_forever()
        if self._outcomes.over:
            raise BacktestError(
                "every worker process exited and none may start in their place "
                f"({self._pool.restarts} replacements made, as max_worker_restarts allows)"
            )


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
    """A runner of the sweep's jobs over `datasets`, its `workers` processes running for
    the length of the block."""
    outcomes = SweepOutcomes(db, [], None, max_worker_restarts)
    outcomes.record_every = 0.0
    with sweep_folder() as folder:
        sweep_file = folder / "sweep.pickle"
        await anyio.to_thread.run_sync(dump_sweep_file, datasets, [], sweep_file)
        context = multiprocessing.get_context(start_method)
        pool = WorkerPool(context, workers, sweep_file, chunk_size, [], open_ended=True)
        try:
            try:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(run_pool, outcomes, pool, writer)
                    yield SweepRunner(outcomes, pool)
                    pool.close()  # the workers stop once their jobs are done
            except BaseExceptionGroup as group:
                # The block or the pool failed: raise its error as itself, as a caller of
                # one coroutine expects.
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from group
                raise
        except BaseException:
            await finish_sweep(db, sweep_id, "interrupted", outcomes.unfinished())
            raise
