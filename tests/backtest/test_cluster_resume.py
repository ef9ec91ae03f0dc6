"""Resuming a sweep on a Dask cluster (a LocalCluster against the real PostgreSQL): after a
cancellation, or SIGKILL of the coordinator while its tasks still run, the resumed sweep
equals one never stopped; a task of the killed coordinator that is still running finds its
backtest replaced and stores nothing."""

from __future__ import annotations

import anyio
import pytest
from distributed import Client, LocalCluster

from quantflow_async import Database
from quantflow_async.backtest import SweepProgress, run_sweep
from quantflow_async.backtest.cluster import run_sweep_on_cluster
from tests.backtest import resume_child
from tests.backtest.sweep_outcomes import assert_same_sweep, orphans, outcomes
from tests.backtest.test_cluster_sweep import client, cluster, pg, tasks_executing
from tests.backtest.test_sweep_resume import sigkill, start_child, stop_near_the_middle

__all__ = ["client", "cluster", "pg"]  # the fixtures, shared with test_cluster_sweep


async def resumed_on_the_cluster_equals_a_local_run(pg: Database, client: Client) -> None:
    (stopped,) = await pg.sweeps.list()
    assert 0 < stopped.counts.get("completed", 0) < resume_child.JOBS
    data = resume_child.data()
    result = await run_sweep_on_cluster(
        pg, "sma_cross", resume_child.GRID, data, strategy_id=stopped.sweep.strategy_id,
        cluster=client, resume=stopped.sweep.id,
    )  # fmt: skip
    assert (result.completed, result.failed) == (resume_child.JOBS, 0)
    assert 0 < result.skipped < resume_child.JOBS
    with anyio.fail_after(60):  # tasks of the stopped coordinator end too
        while await tasks_executing(client):
            await anyio.sleep(0.05)
    local = await run_sweep(
        pg, "sma_cross", resume_child.GRID, data, strategy_id=stopped.sweep.strategy_id
    )
    assert local.sweep_id is not None
    assert_same_sweep(await outcomes(pg, stopped.sweep.id), await outcomes(pg, local.sweep_id))
    assert await orphans(pg) == {"unfinished backtests": 0, "fills of unfinished": 0}


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_cluster_sweep_cancelled_mid_way_and_resumed_equals_one_never_stopped(
    pg: Database, client: Client
) -> None:
    strategy_id = (await pg.strategies.create(name="cluster resume")).id
    async with anyio.create_task_group() as tasks:

        def progress(report: SweepProgress) -> None:
            if report.done >= resume_child.JOBS // 2:
                tasks.cancel_scope.cancel()

        async def sweep() -> None:
            await run_sweep_on_cluster(
                pg, "sma_cross", resume_child.GRID, resume_child.data(),
                strategy_id=strategy_id, cluster=client, progress=progress,
            )  # fmt: skip

        tasks.start_soon(sweep)
    (stopped,) = await pg.sweeps.list()
    assert stopped.sweep.status == "interrupted"
    await resumed_on_the_cluster_equals_a_local_run(pg, client)


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_cluster_sweep_whose_coordinator_is_sigkilled_resumes_to_one_never_stopped(
    pg: Database, client: Client, cluster: LocalCluster, postgres_database_url: str
) -> None:
    stop_near_the_middle(start_child(postgres_database_url, cluster.scheduler_address), sigkill)
    (stopped,) = await pg.sweeps.list()
    assert stopped.sweep.status == "running"  # nobody was left to mark it
    await resumed_on_the_cluster_equals_a_local_run(pg, client)
