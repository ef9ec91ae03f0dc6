"""A sweep on a Dask cluster stores metrics and errors in the same storable form as the runner
and the local sweep: a CAGR past 1e16 and an error text holding a NUL end their backtests
completed and failed, and the others complete (LocalCluster, the real PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from quantflow_async import Database
from quantflow_async.backtest import run_backtest, run_sweep_on_cluster
from tests.backtest.test_storing_faults import FLAT, RISING, BuyAndHold, RaisesNul

distributed = pytest.importorskip("distributed")
# Each module starts a Dask cluster of worker processes: seconds before its first test runs.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    with (
        distributed.LocalCluster(
            n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as dask_client,
    ):
        yield dask_client


@pytest.fixture
async def pg(postgres_database_url: str) -> AsyncIterator[Database]:
    async with Database(postgres_database_url) as db:
        await db.migrate()
        yield db


async def test_a_cluster_sweep_stores_a_cagr_past_1e16_as_text_and_completes(
    pg: Database, client: object
) -> None:
    strategy_id = (await pg.strategies.create(name="cluster")).id
    result = await run_sweep_on_cluster(
        pg, BuyAndHold, [{}], {"UP": RISING, "FLAT": FLAT}, cluster=client,
        strategy_id=strategy_id,
    )  # fmt: skip
    assert (result.completed, result.failed) == (2, 0)
    rising = await pg.backtests.get(result.backtest_ids[0])
    assert rising.status == "completed"
    assert rising.metrics is not None
    assert rising.metrics["cagr_pct"] == repr(run_backtest(BuyAndHold, RISING).metrics["cagr_pct"])


async def test_a_cluster_sweep_stores_an_error_text_holding_a_nul_as_failed(
    pg: Database, client: object
) -> None:
    strategy_id = (await pg.strategies.create(name="cluster")).id
    result = await run_sweep_on_cluster(
        pg, RaisesNul, [{}], FLAT, cluster=client, strategy_id=strategy_id
    )
    assert (result.completed, result.failed) == (0, 1)
    backtest = await pg.backtests.get(result.backtest_ids[0])
    assert backtest.status == "failed"
    assert backtest.results is not None
    assert backtest.results["error"]["message"] == "bad byte \\x00 in the feed"
