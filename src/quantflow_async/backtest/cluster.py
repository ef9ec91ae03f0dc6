"""A sweep on a Dask distributed cluster: each backtest is one Dask task that stores its own fills.

    async with Database("postgresql+asyncpg://quant@db.internal/quantflow") as db:
        result = await run_sweep_on_cluster(db, "sma_cross", {"fast": [5, 10], "slow": [20, 50]},
                                            {"GOOG": "goog.csv"}, strategy_id=strategy.id,
                                            cluster="tcp://scheduler.internal:8786")

This process, the coordinator, stores every backtest as pending, sends the data sets to the
cluster once and submits one task per backtest. A task opens the database on its worker,
marks its backtest running, runs it, writes its fills through a writer of its own, closes
it all and returns the metrics and results, which the coordinator records. Needs the
`cluster` extra, PostgreSQL, and this package installed on every worker.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import anyio

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.cluster_task import Outcome, backtest_task, data_task
from quantflow_async.backtest.constraints import Constraint
from quantflow_async.backtest.conversion import (
    FILL_CHUNK,
    error_document,
)
from quantflow_async.backtest.runner import mark_cancelled
from quantflow_async.backtest.spec import RunOptions, split_symbol
from quantflow_async.backtest.strategy import Strategy
from quantflow_async.backtest.sweep import SweepCounts
from quantflow_async.backtest.sweep_jobs import DataSource, Grid, load_datasets, plan_sweep
from quantflow_async.backtest.sweep_store import finish_sweep, store_sweep
from quantflow_async.backtest.sweep_tally import ProgressCallback, SweepTally
from quantflow_async.backtest.worker import Job
from quantflow_async.config import Settings
from quantflow_async.database import Database
from quantflow_async.errors import InvalidValue
from quantflow_async.extras import require_extra

if TYPE_CHECKING:
    # distributed leaves Client.nthreads and Future's add_done_callback and
    # release unannotated: their calls carry `type: ignore[no-untyped-call]`, nothing else.
    from distributed import Client, Future
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

TASK_RETRIES: Final = 2
"""How many times Dask runs a task again after it raised (the store failed under it). A task
run again stores only the fills that are missing: their external ids are deterministic."""
WAIT_SECONDS: Final = 0.2
"""How long a thread waits for a task to finish before the event loop looks again."""
STOP_SECONDS: Final = 30.0
"""How long cancelling the tasks, or closing a client of our own, may take once stopping."""
KEY_PREFIX: Final = "quantflow-backtest"
"""Task keys are "quantflow-backtest-{backtest id}-{sweep}", as the dashboard shows them."""
DATA_KEY_PREFIX: Final = "quantflow-bars"
"""A data set's key is "quantflow-bars-{hash of its contents}"."""


@dataclass(frozen=True, slots=True)
class ClusterSweepResult(SweepCounts):
    """What a finished sweep on a cluster did (`SweepCounts`).

    `fills_stored` is counted in the store, backtest by backtest, as each one of this run
    finished; `workers` is the number of Dask workers when the tasks were submitted.
    """

    sweep_id: int | None = None
    """The stored sweep, which `run_sweep_on_cluster(..., resume=sweep_id)` resumes."""
    skipped: int = 0
    """Backtests a resumed sweep had completed before: counted in `completed`, not run again."""


async def run_sweep_on_cluster(
    db: Database,
    strategy: str | type[Strategy],
    grid: Grid,
    data: DataSource | Mapping[str, DataSource],
    *,
    cluster: Client | str,
    strategy_id: int,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    chunk_size: int = FILL_CHUNK,
    constraint: Constraint | str | None = None,
    resume: int | None = None,
    **options: Unpack[RunOptions],
) -> ClusterSweepResult:
    """`run_sweep` on a Dask cluster: every config of `grid` over every data set, one task each.

    `cluster` is a `distributed.Client` (left open) or a scheduler's address such as
    "tcp://10.0.0.5:8786" (a client of its own, closed when done). `db` must be PostgreSQL,
    which every worker reaches by the same URL: a SQLite database is refused (InvalidValue)
    before anything is stored, since a file is not shared between machines. The other
    arguments are `run_sweep`'s, `constraint` and `resume` too: the sweep is stored with
    its jobs, and `resume=ID` runs only the jobs of sweep ID that did not complete, each
    under a new backtest (a task of the stopped sweep still running somewhere then finds
    its backtest gone and stores nothing). `progress` is called on the event loop after
    each finished backtest; an exception from it stops the sweep as a cancellation would.
    Cancellation (a cancelled task, Ctrl-C under `asyncio.run`) cancels the sweep's Dask
    tasks, keeps every committed fill, marks what had not finished cancelled and the
    sweep interrupted; a task already running sees it before its next chunk of fills and
    stops once what its writer holds is committed.
    """
    if db.settings.is_sqlite:
        raise InvalidValue(
            "database_url",
            "a sweep on a cluster needs PostgreSQL: its tasks run on other machines, and a "
            "SQLite file is not shared between machines",
        )
    distributed = _import_distributed()
    _check_cluster(cluster, distributed)
    symbol, settings = split_symbol(options)
    plan = plan_sweep(strategy, grid, load_datasets(data, symbol), constraint, settings)
    async with _connected(cluster, distributed) as client:
        stored = await store_sweep(db, plan, strategy_id=strategy_id, name=name, resume=resume)
        sweep = _ClusterSweep(db, client, stored.jobs, progress, stored.sweep_id)
        started = time.perf_counter()
        try:
            if stored.jobs:
                await anyio.to_thread.run_sync(sweep.submit, plan.datasets, db.settings, chunk_size)
                await sweep.collect()
        except BaseException as exc:
            log.info("cluster sweep stopped: %r; cancelling its tasks", exc)
            await sweep.stop()
            await finish_sweep(db, stored.sweep_id, "interrupted")
            raise
        finally:
            sweep.release()
    await finish_sweep(db, stored.sweep_id, "completed")
    counts = await db.sweeps.counts(stored.sweep_id)
    return ClusterSweepResult(
        backtest_ids=stored.backtest_ids,
        completed=counts.get("completed", 0),
        failed=counts.get("failed", 0),
        fills_stored=sweep.fills_stored,
        seconds=time.perf_counter() - started,
        workers=sweep.workers,
        sweep_id=stored.sweep_id,
        skipped=stored.skipped,
    )


def _import_distributed() -> ModuleType:
    distributed: ModuleType = require_extra(
        "distributed", extra="cluster", purpose="a sweep on a cluster"
    )
    return distributed


def _check_cluster(cluster: object, distributed: ModuleType) -> None:
    if isinstance(cluster, str):
        return
    if not isinstance(cluster, distributed.Client):
        raise InvalidValue(
            "cluster",
            "expected a distributed.Client or a scheduler address such as "
            f"'tcp://10.0.0.5:8786', got {type(cluster).__name__}",
        )
    if cluster.asynchronous:
        raise InvalidValue(
            "cluster", "an asynchronous Client is not supported; pass one made by Client(...)"
        )


@contextlib.asynccontextmanager
async def _connected(cluster: Client | str, distributed: ModuleType) -> AsyncIterator[Client]:
    """The caller's client as it is, or a client of our own to the address, closed after."""
    if not isinstance(cluster, str):
        yield cluster
        return
    connect = functools.partial(distributed.Client, cluster, set_as_default=False)
    client: Client = await anyio.to_thread.run_sync(connect)
    try:
        yield client
    finally:
        with anyio.move_on_after(STOP_SECONDS, shield=True):
            await anyio.to_thread.run_sync(client.close)


class _ClusterSweep:
    """The coordinator's side: submits the tasks, records each outcome as it arrives."""

    def __init__(
        self,
        db: Database,
        client: Client,
        jobs: list[Job],
        progress: ProgressCallback | None,
        sweep_id: int,
    ) -> None:
        self.db = db
        self.client = client
        self.jobs = jobs
        self.tally = SweepTally(db, jobs, progress, sweep_id)
        self.fills_stored = 0
        self.workers = 0
        self._tasks: dict[Future[Outcome], Job] = {}
        self._waiting: set[Future[Outcome]] = set()
        self._data: list[Future[Bars]] = []
        # Dask calls a future's done-callbacks on a thread of its own; they put it here.
        self._done: queue.SimpleQueue[Future[Outcome]] = queue.SimpleQueue()

    def submit(self, datasets: Mapping[str, Bars], settings: Settings, chunk_size: int) -> None:
        """Send each data set to the cluster once, then one task per job (blocking)."""
        # A task that returns the bars, not scattered data: Dask's memory manager keeps one
        # copy of a result that no waiting task needs, and scattered data whose one copy is
        # on a worker that dies cannot be made again, so every backtest of it would fail. A
        # task's bars travel in its graph (the scheduler keeps them until the sweep releases
        # them) and are computed again elsewhere when their worker is lost. Keys are made
        # from the bars' contents, never their symbols: two sweeps sharing a cluster must not
        # take each other's data.
        import dask.config  # with the cluster extra, as distributed is
        from dask.base import tokenize

        # Dask's warning about a large graph is for data sent again with every task; each data
        # set here is sent once. Its threshold is raised, not the warning filtered out: a
        # filter (warnings.catch_warnings) would apply to every thread of the process.
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 PiB"}):
            self._data = [
                self.client.submit(data_task, bars, key=f"{DATA_KEY_PREFIX}-{tokenize(bars)}")
                for bars in datasets.values()
            ]
        data_of = dict(zip(datasets, self._data, strict=True))
        sweep = uuid.uuid4().hex[:12]
        for job in self.jobs:
            future = self.client.submit(
                backtest_task,
                settings,
                job,
                data_of[job.data],
                chunk_size,
                key=f"{KEY_PREFIX}-{job.backtest_id}-{sweep}",
                retries=TASK_RETRIES,
                pure=False,
            )
            self._tasks[future] = job
            self._waiting.add(future)
            future.add_done_callback(self._done.put)  # type: ignore[no-untyped-call]
        self.workers = len(self.client.nthreads())  # type: ignore[no-untyped-call]
        log.info("cluster sweep %s: %d tasks, %d workers", sweep, len(self.jobs), self.workers)

    async def collect(self) -> None:
        """Record every task's outcome as it finishes, until none is left."""
        while self._waiting:
            # Abandoned on cancellation (it returns within WAIT_SECONDS anyway): a shielded
            # wait would swallow asyncio's own Task.cancel(), which is what Ctrl-C sends.
            done = await anyio.to_thread.run_sync(self._take_done, abandon_on_cancel=True)
            if not done:
                continue
            outcomes = await anyio.to_thread.run_sync(_outcomes, done, abandon_on_cancel=True)
            for future, outcome in outcomes:
                await self._record(self._tasks[future], outcome)
                self._waiting.discard(future)
                # recorded: the cluster need not keep its result any longer
                future.release()  # type: ignore[no-untyped-call]

    async def _record(self, job: Job, outcome: Outcome) -> None:
        backtest_id = job.backtest_id
        kind = outcome[0]
        if kind == "completed":
            await self.tally.record_completed(backtest_id, outcome[1], outcome[2])
        elif kind == "failed":
            await self.tally.record_failed(backtest_id, outcome[1])
        else:
            await self.tally.record_cancelled(backtest_id)
        self.fills_stored += await self.db.trades.count(backtest_id=backtest_id)
        self.tally.report(self.fills_stored)

    async def stop(self) -> None:
        """Cancel every task, then mark what had not finished cancelled; shielded."""
        with anyio.move_on_after(STOP_SECONDS, shield=True):
            await anyio.to_thread.run_sync(self.client.cancel, list(self._waiting))
        await mark_cancelled(self.db, self.tally.unfinished())

    def _take_done(self) -> list[Future[Outcome]]:
        """The tasks that finished, waiting up to WAIT_SECONDS for one (runs in a thread)."""
        try:
            done = [self._done.get(timeout=WAIT_SECONDS)]
        except queue.Empty:
            return []
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                return done

    def release(self) -> None:
        """Let the cluster forget our tasks and data sets (the client stays open); a future
        released already is left as it is."""
        futures: list[Future[Any]] = [*self._tasks, *self._data]
        for future in futures:
            future.release()  # type: ignore[no-untyped-call]


def _outcomes(futures: list[Future[Outcome]]) -> list[tuple[Future[Outcome], Outcome]]:
    """Each finished task's outcome (runs in a thread). A task that raised past its retries,
    whose workers kept dying, or that the cluster cancelled (its data set was lost, another
    client cancelled it) is a failed backtest with that error."""
    found: list[tuple[Future[Outcome], Outcome]] = []
    for future in futures:
        try:
            found.append((future, future.result()))
        except Exception as exc:
            found.append((future, ("failed", error_document(exc))))
    return found
