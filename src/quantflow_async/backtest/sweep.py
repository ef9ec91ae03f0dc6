"""A parameter sweep: one strategy, a grid of configs, one or many data sets, N worker processes.

    result = await run_sweep(db, "sma_cross", {"fast": [5, 10], "slow": [20, 50]},
                             {"GOOG": "goog.csv"}, strategy_id=strategy.id, workers=2)

Every backtest is stored as pending first. Worker processes (worker.py, started and read by
worker_pool.py) run them and send their fills in chunks, each on a pipe of its own; a thread
of this process reads them, and the event loop hands the fills to the one TradeWriter and
records each outcome once its fills are committed. A failing backtest is marked failed and
the others go on; a dead worker is replaced. Cancellation (a cancelled task, or Ctrl-C
under `asyncio.run`) stops the workers, keeps every committed fill and marks what had not
finished cancelled.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio

from quantflow_async.backtest.constraints import Constraint
from quantflow_async.backtest.conversion import FILL_CHUNK
from quantflow_async.backtest.spec import RunOptions, split_symbol
from quantflow_async.backtest.strategies import strategy_reference
from quantflow_async.backtest.strategy import Strategy
from quantflow_async.backtest.sweep_folder import sweep_folder
from quantflow_async.backtest.sweep_jobs import DataSource, Grid, load_datasets, plan_sweep
from quantflow_async.backtest.sweep_jobs import (
    expand_grid as expand_grid,  # the package names it here
)
from quantflow_async.backtest.sweep_outcomes import SweepOutcomes, dump_sweep_file, run_pool
from quantflow_async.backtest.sweep_store import finish_sweep, store_sweep
from quantflow_async.backtest.sweep_tally import ProgressCallback
from quantflow_async.backtest.sweep_tally import (
    SweepProgress as SweepProgress,  # the package names it here
)
from quantflow_async.backtest.worker_pool import WorkerPool
from quantflow_async.database import Database
from quantflow_async.errors import StrategyConfigError
from quantflow_async.ingest.stats import WriterStats
from quantflow_async.ingest.writer import TradeWriter

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

_Workers = WorkerPool  # the pool's name when it lived in this module
MAX_WORKER_RESTARTS: Final = 3
"""How many dead worker processes a sweep replaces, by default, before it runs on without."""
START_METHODS: Final = ("spawn", "forkserver")
"""How worker processes may start: never by fork, which copies the caller's threads' locks."""


@dataclass(frozen=True, slots=True)
class SweepCounts:
    """What every finished sweep reports, on worker processes or on a cluster.

    `backtest_ids` in job order (data set by data set, configs in grid order): every job of
    the sweep, `completed` and `failed` count them all, a resumed sweep's earlier ones too.
    `fills_stored` counts this run's own fills, all committed.
    """

    backtest_ids: tuple[int, ...]
    completed: int
    failed: int
    fills_stored: int
    seconds: float
    workers: int


@dataclass(frozen=True, slots=True)
class SweepResult(SweepCounts):
    """What a finished sweep did (`SweepCounts`, and more).

    `fills_stored` counts this run's own fills even on a writer shared with others; `writer`
    is that writer's whole life. `worker_restarts` counts the worker processes started in
    the place of dead ones. `blocked_share` is the share of the wall time the workers spent
    waiting for room in the queue to the writer, averaged over the workers: how much the
    writer held them back.
    """

    blocked_share: float
    writer: WriterStats
    worker_restarts: int
    excluded: tuple[dict[str, Any], ...] = ()
    """The grid's configs the constraint left out, in grid order: never stored."""
    sweep_id: int | None = None
    """The stored sweep (`db.sweeps`), which `run_sweep(..., resume=sweep_id)` resumes."""
    skipped: int = 0
    """Backtests a resumed sweep had completed before: counted in `completed`, not run again."""


_NOTHING_WRITTEN: Final = WriterStats(0, 0, 0, 0, 0, 0, 0, None, None, None, None)


async def run_sweep(
    db: Database,
    strategy: str | type[Strategy],
    grid: Grid,
    data: DataSource | Mapping[str, DataSource],
    *,
    strategy_id: int,
    workers: int = 2,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    writer: TradeWriter | None = None,
    chunk_size: int = FILL_CHUNK,
    start_method: str = "spawn",
    max_worker_restarts: int = MAX_WORKER_RESTARTS,
    constraint: Constraint | str | None = None,
    resume: int | None = None,
    **options: Unpack[RunOptions],
) -> SweepResult:
    """Run every config of `grid` over every data set in `workers` processes; store it all.

    `data` is bars or a file (`symbol` names it), or a mapping of symbol to bars or file.
    Files are read here, first, so a bad file or a bad config (StrategyConfigError for any
    combination of the grid) raises before anything is stored. `name` prefixes each
    backtest's name. `progress` is called on the event loop after each chunk of fills and
    each finished backtest; an exception from it stops the sweep as a cancellation would.
    Fills go through `writer` if given (left open), else a writer of its own. `start_method`
    is "spawn" or "forkserver": workers never rely on fork. `constraint` keeps only the
    configs it is true for: a callable taking a config, or a safe expression over the
    parameters such as "fast < slow" (backtest/constraints.py); the ones it excludes are
    not stored, and `SweepResult.excluded` lists them. `options` are the run's
    (RunOptions: cash, commission, slippage and the rest), checked with the rest.

    The sweep is stored (`db.sweeps`) with all its pending backtests in one transaction;
    its id is `SweepResult.sweep_id`. `resume=ID` runs sweep ID again with the same
    arguments: only its jobs that did not complete run, each under a new backtest that
    replaces the old one and its fills; the data sets must be unchanged (InvalidValue names
    one whose content changed). A stopped sweep (cancelled, Ctrl-C, an error) is marked
    interrupted, one whose process was killed stays running: either can be resumed.

    A worker process that dies (killed, out of memory) fails the backtest it was running,
    which is not run again (what killed its worker would likely kill the next), and a new
    worker takes its place while jobs are waiting, at most `max_worker_restarts` times in
    the sweep (3; 0 replaces none). Jobs that no worker is left to run then end failed.
    """
    check_running(workers, chunk_size, start_method, max_worker_restarts)
    if not isinstance(strategy, str):
        strategy_reference(strategy)  # a class the worker processes cannot import: refused now
    symbol, settings = split_symbol(options)
    plan = plan_sweep(strategy, grid, load_datasets(data, symbol), constraint, settings)
    stored = await store_sweep(db, plan, strategy_id=strategy_id, name=name, resume=resume)
    jobs = stored.jobs
    sweep = SweepOutcomes(db, jobs, progress, max_worker_restarts, stored.sweep_id)
    started = time.perf_counter()
    pool: WorkerPool | None = None
    try:
        if not jobs:
            stats = writer.stats() if writer is not None else _NOTHING_WRITTEN
        else:
            with sweep_folder() as folder:
                sweep_file = folder / "sweep.pickle"
                await anyio.to_thread.run_sync(dump_sweep_file, plan.datasets, jobs, sweep_file)
                context = multiprocessing.get_context(start_method)
                pool = WorkerPool(context, min(workers, len(jobs)), sweep_file, chunk_size, jobs)
                if writer is None:
                    async with db.writer() as own_writer:
                        await run_pool(sweep, pool, own_writer)
                        stats = own_writer.stats()
                else:
                    await run_pool(sweep, pool, writer)
                    await writer.flush()  # the sweep's fills are committed when it returns
                    stats = writer.stats()
    except anyio.get_cancelled_exc_class():
        await finish_sweep(db, stored.sweep_id, "interrupted", sweep.unfinished())
        raise
    except BaseException as exc:
        # KeyboardInterrupt outside asyncio.run's handling, a storage failure, a bug
        log.error("sweep stopped: %r; marking its unfinished backtests cancelled", exc)
        await finish_sweep(db, stored.sweep_id, "interrupted", sweep.unfinished())
        raise
    await finish_sweep(db, stored.sweep_id, "completed")
    seconds = time.perf_counter() - started
    counts = await db.sweeps.counts(stored.sweep_id)
    count = pool.count if pool is not None else 0
    return SweepResult(
        backtest_ids=stored.backtest_ids,
        completed=counts.get("completed", 0),
        failed=counts.get("failed", 0),
        fills_stored=sweep.fills,
        seconds=seconds,
        workers=count,
        blocked_share=pool.blocked / (count * seconds) if pool and seconds > 0 else 0.0,
        writer=stats,
        worker_restarts=pool.restarts if pool is not None else 0,
        excluded=tuple(plan.excluded),
        sweep_id=stored.sweep_id,
        skipped=stored.skipped,
    )


def check_running(
    workers: int, chunk_size: int, start_method: str, max_worker_restarts: int
) -> None:
    """StrategyConfigError naming the first of the running options that is not valid."""
    for option, value, least in (
        ("workers", workers, 1),
        ("chunk_size", chunk_size, 1),
        ("max_worker_restarts", max_worker_restarts, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise StrategyConfigError(option, f"must be an int >= {least}, got {value!r}")
    if start_method not in START_METHODS:
        raise StrategyConfigError(
            "start_method", f"must be one of {', '.join(START_METHODS)}, got {start_method!r}"
        )
