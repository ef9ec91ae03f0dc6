"""Sweeps on a Dask cluster: a LocalCluster of two worker processes against the real PostgreSQL.

A sweep on the cluster stores what the same sweep run locally stores (the same metrics, the
same fills, config by config). Its faults are real: the sweep's task cancelled, a worker
process SIGKILLed mid-backtest, every connection to the database terminated by the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import asyncpg
import dask.config
import psutil
import pytest
from distributed import Client, LocalCluster

from quantflow_async import Backtest, Database, InvalidValue
from quantflow_async.backtest import (
    SweepProgress,
    run_backtest,
    run_sweep,
    run_sweep_on_cluster,
    synthetic_bars,
)
from tests.backtest.sweep_child import Exploding

SMALL = {"A": synthetic_bars(3_000, seed=1), "B": synthetic_bars(3_000, seed=2)}
GRID = {"fast": [3, 5], "slow": [10, 20]}
# Backtests of 10,000 to 22,000 fills each: long enough to be caught in the middle.
LONG = {f"S{i}": synthetic_bars(50_000, seed=i, drift=0.0) for i in range(2)}
LONG_GRID = {"fast": [2, 3], "slow": [5, 8]}
KEY_PREFIX = "quantflow-backtest-"
# Each module starts a Dask cluster of worker processes: seconds before its first test runs.
pytestmark = pytest.mark.slow

Fills = list[tuple[Any, ...]]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as local_cluster:
        yield local_cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    """A client of the cluster, once both workers are up (a test may have killed one)."""
    with Client(cluster, set_as_default=False) as dask_client:
        dask_client.wait_for_workers(2, timeout=60)
        yield dask_client


@pytest.fixture
async def pg(postgres_database_url: str) -> AsyncIterator[Database]:
    async with Database(postgres_database_url) as db:
        await db.migrate()
        yield db


async def new_strategy(db: Database) -> int:
    return (await db.strategies.create(name="cluster sweep")).id


@functools.cache
def _executions(symbol: str, fast: int, slow: int) -> int:
    return len(run_backtest("sma_cross", LONG[symbol], {"fast": fast, "slow": slow}).executions)


def full_count(backtest: Backtest) -> int:
    """How many fills the backtest (of the LONG data) has when all of them are stored."""
    config = backtest.config
    return _executions(config["symbol"], config["parameters"]["fast"], config["parameters"]["slow"])


async def stored_by_config(db: Database, backtest_ids: tuple[int, ...]) -> dict[str, Any]:
    """Each backtest's metrics and fills, keyed by its data set and parameters (not its id)."""
    found: dict[str, Any] = {}
    for backtest_id in backtest_ids:
        backtest = await db.backtests.get(backtest_id)
        key = json.dumps([backtest.config["symbol"], backtest.config["parameters"]])
        trades = [t async for t in db.trades.stream(backtest_id=backtest_id)]
        # in execution order: the sequence an external id ends with ("backtest-7-42")
        trades.sort(key=lambda t: int((t.external_id or "").rsplit("-", 1)[1]))
        fills = [
            (t.symbol, t.side, t.quantity, t.price, t.fee, t.pnl, t.executed_at) for t in trades
        ]
        found[key] = (backtest.status, backtest.metrics, fills)
    return found


async def a_backtest_half_written(db: Database, strategy_id: int) -> tuple[Backtest, int]:
    """The first running backtest seen with some, but under half, of its fills committed."""
    while True:
        for backtest in await db.backtests.list(strategy_id=strategy_id, status="running"):
            committed = await db.trades.count(backtest_id=backtest.id)
            if 0 < committed < full_count(backtest) / 2:
                return backtest, committed
        await anyio.sleep(0.01)


async def worker_pids(client: Client) -> dict[str, int]:
    """Worker address -> the pid of its process."""
    pids: dict[str, int] = await anyio.to_thread.run_sync(client.run, os.getpid)
    return pids


async def sweep_keys_on_scheduler(client: Client) -> list[str]:
    def keys(dask_scheduler: Any) -> list[str]:
        return [str(key) for key in dask_scheduler.tasks]

    found: list[str] = await anyio.to_thread.run_sync(client.run_on_scheduler, keys)
    return [key for key in found if key.startswith(KEY_PREFIX)]


async def tasks_executing(client: Client) -> int:
    def executing(dask_worker: Any) -> int:
        return int(dask_worker.state.executing_count)

    counts: dict[str, int] = await anyio.to_thread.run_sync(client.run, executing)
    return sum(counts.values())


class TradesLock:
    """`LOCK TABLE trades IN EXCLUSIVE MODE` on a connection of its own: readers go on,
    writers wait until it is released."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def acquire(self) -> None:
        await self.connection.execute("BEGIN; LOCK TABLE trades IN EXCLUSIVE MODE")


@contextlib.asynccontextmanager
async def trades_locked(url: str) -> AsyncIterator[TradesLock]:
    """A TradesLock to acquire when wanted; released (rolled back) on leaving."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        yield TradesLock(connection)
    finally:
        await connection.close()  # ends the transaction, and the lock with it


def terminate_other_connections(url: str) -> int:
    """Have the server terminate every other connection to the database; how many it ended.

    Runs on a thread of its own and waits for it, so the caller's event loop is blocked
    meanwhile: called from a progress report, the coordinator is running no statement then.
    """

    async def terminate() -> int:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            ended: int = await connection.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return ended
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, terminate()).result()


@pytest.mark.postgres
async def test_a_sweep_on_the_cluster_stores_what_the_same_sweep_stores_locally(
    pg: Database, client: Client
) -> None:
    strategy_id = await new_strategy(pg)
    settings: dict[str, Any] = {"strategy_id": strategy_id, "commission": 0.002}
    local = await run_sweep(pg, "sma_cross", GRID, SMALL, workers=2, **settings)
    reports: list[SweepProgress] = []
    remote = await run_sweep_on_cluster(
        pg, "sma_cross", GRID, SMALL, cluster=client, progress=reports.append, **settings
    )
    assert (remote.completed, remote.failed, remote.workers) == (8, 0, 2)
    assert set(remote.backtest_ids).isdisjoint(local.backtest_ids)
    on_cluster = await stored_by_config(pg, remote.backtest_ids)
    assert on_cluster == await stored_by_config(pg, local.backtest_ids)
    assert {status for status, _, _ in on_cluster.values()} == {"completed"}
    assert remote.fills_stored == local.fills_stored > 0
    assert reports[-1] == SweepProgress(
        total=8, done=8, failed=0, fills_stored=local.fills_stored, sweep_id=remote.sweep_id
    )


@pytest.mark.postgres
async def test_a_scheduler_address_gets_a_client_of_its_own_closed_at_the_end(
    pg: Database, client: Client
) -> None:
    def clients(dask_scheduler: Any) -> int:
        return len(dask_scheduler.clients)

    before = await anyio.to_thread.run_sync(client.run_on_scheduler, clients)
    result = await run_sweep_on_cluster(
        pg, "sma_cross", {"fast": [3], "slow": [10]}, SMALL["A"],
        cluster=client.scheduler.address, strategy_id=await new_strategy(pg),
    )  # fmt: skip
    assert result.completed == 1
    assert await pg.trades.count(backtest_id=result.backtest_ids[0]) > 0
    assert await anyio.to_thread.run_sync(client.run_on_scheduler, clients) == before


@pytest.mark.postgres
async def test_a_data_set_past_dasks_large_graph_threshold_goes_without_its_warning(
    pg: Database, client: Client
) -> None:
    # Each data set travels once, in a task of its own: Dask's advice for data sent again with
    # every task does not apply, and the process's own warning filters are left alone.
    filters_before = list(warnings.filters)
    with (
        dask.config.set({"distributed.admin.large-graph-warning-threshold": "1kB"}),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        result = await run_sweep_on_cluster(
            pg, "sma_cross", {"fast": [3], "slow": [10]}, SMALL["A"],
            cluster=client, strategy_id=await new_strategy(pg),
        )  # fmt: skip
        assert dask.config.get("distributed.admin.large-graph-warning-threshold") == "1kB"
    assert result.completed == 1
    assert [str(w.message) for w in caught if "large graph" in str(w.message)] == []
    assert warnings.filters == filters_before


async def test_a_sqlite_database_is_refused_before_anything_is_stored(sqlite_url: str) -> None:
    async with Database(sqlite_url) as db:
        await db.migrate()
        strategy_id = await new_strategy(db)
        with pytest.raises(InvalidValue, match="a SQLite file is not shared between machines"):
            await run_sweep_on_cluster(
                db, "sma_cross", GRID, SMALL, strategy_id=strategy_id,
                cluster="tcp://127.0.0.1:9",  # never contacted
            )  # fmt: skip
        assert await db.backtests.list() == []


@pytest.mark.postgres
async def test_a_failing_backtest_on_the_cluster_is_marked_failed_and_the_others_complete(
    pg: Database, client: Client
) -> None:
    grid = [{"explode_at": 0}, {"explode_at": 500}, {"explode_at": 0, "fast": 3}]
    result = await run_sweep_on_cluster(
        pg, Exploding, grid, SMALL["A"], strategy_id=await new_strategy(pg), cluster=client
    )
    assert (result.completed, result.failed) == (2, 1)
    backtests = [await pg.backtests.get(i) for i in result.backtest_ids]
    assert [b.status for b in backtests] == ["completed", "failed", "completed"]
    assert backtests[1].results is not None
    assert backtests[1].results["error"]["message"] == "exploded on bar 500"
    assert await pg.trades.count(backtest_id=backtests[1].id) == 0
    assert await pg.trades.count(backtest_id=backtests[0].id) > 0


@pytest.mark.postgres
async def test_no_worker_holds_a_database_connection_once_the_sweep_returns(
    pg: Database, client: Client
) -> None:
    pids = (await worker_pids(client)).values()
    result = await run_sweep_on_cluster(
        pg, "sma_cross", GRID, SMALL, strategy_id=await new_strategy(pg), cluster=client
    )
    assert result.completed == 8
    assert result.fills_stored > 0
    port = 5432
    held = [
        connection
        for pid in pids
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == port
    ]
    assert held == []


@pytest.mark.slow  # Dask tasks of long backtests cancelled part way
@pytest.mark.postgres
async def test_cancelling_the_sweep_cancels_its_dask_tasks_and_marks_the_rest_cancelled(
    pg: Database, client: Client
) -> None:
    strategy_id = await new_strategy(pg)
    grid = {"fast": [2, 3, 4], "slow": [5, 8]}  # 12 backtests; cancelled after the first

    async with anyio.create_task_group() as tasks:

        def progress(report: SweepProgress) -> None:
            if report.done >= 1:
                tasks.cancel_scope.cancel()

        async def sweep() -> None:
            await run_sweep_on_cluster(
                pg, "sma_cross", grid, LONG, strategy_id=strategy_id, cluster=client,
                progress=progress,
            )  # fmt: skip

        tasks.start_soon(sweep)

    assert await sweep_keys_on_scheduler(client) == []
    with anyio.fail_after(30):  # tasks that were running see the cancellation and return
        while await tasks_executing(client):
            await anyio.sleep(0.05)
    backtests = await pg.backtests.list(strategy_id=strategy_id)
    statuses = Counter(b.status for b in backtests)
    assert set(statuses) == {"completed", "cancelled"}, statuses
    assert statuses["completed"] >= 1
    for backtest in backtests:
        count = await pg.trades.count(backtest_id=backtest.id)
        if backtest.status == "completed":
            assert count == full_count(backtest)
        else:
            assert count <= full_count(backtest)


@pytest.mark.slow  # Dask tasks of long backtests cancelled part way
@pytest.mark.postgres
async def test_a_task_writing_when_the_sweep_is_cancelled_stops_after_the_chunks_it_queued(
    pg: Database, client: Client, postgres_database_url: str
) -> None:
    strategy_id = await new_strategy(pg)
    sweep = functools.partial(
        run_sweep_on_cluster, pg, "sma_cross", {"fast": [2], "slow": [5]}, LONG,
        strategy_id=strategy_id, cluster=client,
    )  # fmt: skip
    async with trades_locked(postgres_database_url) as lock:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sweep)
            backtest, _ = await a_backtest_half_written(pg, strategy_id)
            # Writers wait on the lock from here: the count stays put while the sweep stops.
            await lock.acquire()
            committed = await pg.trades.count(backtest_id=backtest.id)
            tasks.cancel_scope.cancel()
        assert (await pg.backtests.get(backtest.id)).status == "cancelled"

    with anyio.fail_after(30):
        while await tasks_executing(client):
            await anyio.sleep(0.05)
    # the batch waiting on the lock, the two chunks its writer's queue holds, and the one
    # waiting for room there (chunks and batches are 2,000 fills)
    most = committed + 2_000 + 3 * 2_000
    assert committed <= await pg.trades.count(backtest_id=backtest.id) <= most
    assert most < full_count(backtest)


@pytest.mark.slow  # a Dask worker killed and its backtest run again
@pytest.mark.postgres
async def test_a_worker_killed_mid_backtest_is_run_again_and_no_fill_is_stored_twice(
    pg: Database, client: Client
) -> None:
    strategy_id = await new_strategy(pg)
    pids = await worker_pids(client)
    killed: list[int] = []  # the backtest whose worker was killed

    async def kill_a_worker_mid_backtest() -> None:
        backtest, _ = await a_backtest_half_written(pg, strategy_id)
        processing = await anyio.to_thread.run_sync(client.processing)
        for address, keys in processing.items():
            if any(str(key).startswith(f"{KEY_PREFIX}{backtest.id}-") for key in keys):
                os.kill(pids[address], signal.SIGKILL)
                killed.append(backtest.id)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(kill_a_worker_mid_backtest)
        result = await run_sweep_on_cluster(
            pg, "sma_cross", LONG_GRID, LONG, strategy_id=strategy_id, cluster=client
        )
        tasks.cancel_scope.cancel()

    assert len(killed) == 1  # while its backtest had some, not half, of its fills committed
    assert (result.completed, result.failed) == (8, 0)
    total = 0
    for backtest_id in result.backtest_ids:
        backtest = await pg.backtests.get(backtest_id)
        count = await pg.trades.count(backtest_id=backtest_id)
        assert backtest.status == "completed"
        assert count == full_count(backtest)
        total += count
    assert result.fills_stored == total


@pytest.mark.slow  # every worker holding a data set killed mid-sweep
@pytest.mark.postgres
async def test_every_copy_of_a_data_set_lost_with_its_workers_is_made_again(
    pg: Database, client: Client
) -> None:
    strategy_id = await new_strategy(pg)
    pids = await worker_pids(client)
    killed: list[str] = []  # the workers that held a copy of a data set

    async def kill_every_worker_holding_data() -> None:
        await a_backtest_half_written(pg, strategy_id)
        who_has: dict[str, list[str]] = await anyio.to_thread.run_sync(client.who_has)
        for key, holders in who_has.items():
            if not str(key).startswith(KEY_PREFIX):  # a data set, not a backtest's task
                killed.extend(address for address in holders if address not in killed)
        for address in killed:
            os.kill(pids[address], signal.SIGKILL)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(kill_every_worker_holding_data)
        result = await run_sweep_on_cluster(
            pg, "sma_cross", LONG_GRID, LONG, strategy_id=strategy_id, cluster=client
        )
        tasks.cancel_scope.cancel()

    assert killed
    assert (result.completed, result.failed) == (8, 0)
    for backtest_id in result.backtest_ids:
        backtest = await pg.backtests.get(backtest_id)
        assert await pg.trades.count(backtest_id=backtest_id) == full_count(backtest)


@pytest.mark.slow  # connections dropped through a proxy all along a sweep
@pytest.mark.postgres
async def test_connections_the_server_drops_mid_sweep_lose_and_double_nothing(
    pg: Database, client: Client, postgres_database_url: str
) -> None:
    strategy_id = await new_strategy(pg)
    dropped: list[int] = []

    def progress(report: SweepProgress) -> None:
        if report.done in (1, 3, 5):  # while other backtests are being written
            dropped.append(terminate_other_connections(postgres_database_url))

    result = await run_sweep_on_cluster(
        pg, "sma_cross", LONG_GRID, LONG, strategy_id=strategy_id, cluster=client,
        progress=progress,
    )  # fmt: skip
    assert len(dropped) == 3
    assert sum(dropped) >= 6  # the coordinator's pooled connections and the tasks' own
    assert (result.completed, result.failed) == (8, 0)
    for backtest_id in result.backtest_ids:
        backtest = await pg.backtests.get(backtest_id)
        assert await pg.trades.count(backtest_id=backtest_id) == full_count(backtest)
    assert result.fills_stored == await pg.trades.count(strategy_id=strategy_id)
