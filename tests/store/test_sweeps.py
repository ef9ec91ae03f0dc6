"""The sweeps repository: a sweep and its jobs stored together, unfinished jobs replaced with
their fills, rankings and counts made in SQL, and a sweep deleted with all it holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from quantflow_async import Conflict, Database, InvalidValue, NotFound
from quantflow_async.store.repositories.sweeps import JobRow
from tests.conftest import T0, make_fill

GRID = {"fast": [2, 3], "slow": [5]}


def job(key: str, **parameters: Any) -> JobRow:
    return JobRow(
        job_key=key,
        name=f"job {key}",
        start_date=T0,
        end_date=T0 + timedelta(days=30),
        initial_capital=10_000,
        config={"strategy": "sma_cross", "parameters": parameters},
    )


async def new_sweep(db: Database, strategy_id: int, *keys: str) -> tuple[int, list[int]]:
    sweep, ids = await db.sweeps.create(
        strategy_id=strategy_id,
        strategy="sma_cross",
        space=GRID,
        constraints="fast < slow",
        options={"cash": 10_000.0, "commission": 0.001},
        datasets=[{"name": "GOOG", "source": "goog.csv", "bars": 30, "fingerprint": "ab12"}],
        jobs=[job(key, fast=n) for n, key in enumerate(keys)],
    )
    return sweep.id, ids


async def complete(db: Database, backtest_id: int, sharpe: object) -> None:
    await db.backtests.set_status(backtest_id, "running")
    await db.backtests.save_results(backtest_id, metrics={"sharpe": sharpe})
    await db.backtests.set_status(backtest_id, "completed")


async def test_a_sweep_is_stored_with_its_pending_jobs(db: Database, strategy_id: int) -> None:
    sweep_id, ids = await new_sweep(db, strategy_id, "k1", "k2", "k3")
    sweep = await db.sweeps.get(sweep_id)
    assert (sweep.kind, sweep.status, sweep.constraints) == ("grid", "running", "fast < slow")
    assert sweep.space == GRID and sweep.options["commission"] == 0.001
    assert sweep.fingerprints() == {"GOOG": "ab12"}
    assert sweep.finished_at is None
    backtests = [await db.backtests.get(i) for i in ids]
    assert [(b.sweep_id, b.job_key, b.status) for b in backtests] == [
        (sweep_id, key, "pending") for key in ("k1", "k2", "k3")
    ]
    assert await db.sweeps.counts(sweep_id) == {"pending": 3}


async def test_the_same_job_twice_is_refused_and_nothing_is_stored(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(InvalidValue, match="the same job twice"):
        await new_sweep(db, strategy_id, "k1", "k1")
    assert await db.sweeps.list() == []
    assert await db.backtests.list() == []


async def test_a_sweep_of_an_unknown_strategy_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match="strategy"):
        await new_sweep(db, 999, "k1")


async def test_storing_jobs_again_replaces_the_unfinished_ones_and_their_fills(
    db: Database, strategy_id: int
) -> None:
    sweep_id, (first, second) = await new_sweep(db, strategy_id, "k1", "k2")
    await db.backtests.set_status(second, "running")
    await db.trades.insert_many([make_fill(strategy_id, n, backtest_id=second) for n in range(5)])
    await db.sweeps.set_status(sweep_id, "interrupted")

    (replaced,) = await db.sweeps.store_jobs(sweep_id, [job("k2", fast=1)])

    assert await db.trades.count() == 0
    assert await db.sweeps.jobs(sweep_id) == {"k1": (first, "pending"), "k2": (replaced, "pending")}
    assert (await db.sweeps.get(sweep_id)).status == "running"


async def test_a_completed_job_is_never_stored_again(db: Database, strategy_id: int) -> None:
    sweep_id, (first,) = await new_sweep(db, strategy_id, "k1")
    await complete(db, first, 1.0)
    with pytest.raises(Conflict, match="completed already"):
        await db.sweeps.store_jobs(sweep_id, [job("k1", fast=0)])
    assert (await db.backtests.get(first)).status == "completed"


async def test_best_ranks_completed_backtests_by_a_metric_in_sql(
    db: Database, strategy_id: int
) -> None:
    sweep_id, ids = await new_sweep(db, strategy_id, "a", "b", "c", "d", "e")
    for backtest_id, sharpe in zip(ids, [0.5, "1.5e+17", None, -2.0], strict=False):
        await complete(db, backtest_id, sharpe)  # the last one stays pending
    best = await db.sweeps.best(sweep_id, "sharpe", limit=10)
    assert [b.id for b in best] == [ids[1], ids[0], ids[3], ids[2]]
    lowest = await db.sweeps.best(sweep_id, "sharpe", limit=2, highest=False)
    assert [b.id for b in lowest] == [ids[3], ids[0]]


async def test_a_metric_name_that_is_not_a_plain_key_is_refused(
    db: Database, strategy_id: int
) -> None:
    sweep_id, _ = await new_sweep(db, strategy_id, "a")
    with pytest.raises(InvalidValue, match="metric"):
        await db.sweeps.best(sweep_id, "sharpe'); DROP TABLE sweeps; --")


async def test_list_counts_each_sweeps_backtests_by_status(db: Database, strategy_id: int) -> None:
    first, ids = await new_sweep(db, strategy_id, "a", "b")
    second, _ = await new_sweep(db, strategy_id, "a")
    await complete(db, ids[0], 1.0)
    await db.sweeps.set_status(first, "completed")
    listed = await db.sweeps.list()
    assert [(s.sweep.id, dict(s.counts), s.total) for s in listed] == [
        (first, {"completed": 1, "pending": 1}, 2),
        (second, {"pending": 1}, 1),
    ]
    assert listed[0].sweep.finished_at is not None


async def test_failures_are_the_first_failed_backtests(db: Database, strategy_id: int) -> None:
    sweep_id, ids = await new_sweep(db, strategy_id, "a", "b", "c")
    for backtest_id in ids:
        await db.backtests.set_status(backtest_id, "running")
        await db.backtests.set_status(backtest_id, "failed")
    assert [b.id for b in await db.sweeps.failures(sweep_id, limit=2)] == ids[:2]


async def test_deleting_a_sweep_deletes_its_backtests_and_their_fills(
    db: Database, strategy_id: int
) -> None:
    sweep_id, ids = await new_sweep(db, strategy_id, "a", "b")
    await db.trades.insert_many([make_fill(strategy_id, n, backtest_id=ids[0]) for n in range(3)])
    assert await db.sweeps.delete(sweep_id) == 2
    assert await db.backtests.list() == []
    assert await db.trades.count() == 0
    with pytest.raises(NotFound, match="sweep"):
        await db.sweeps.get(sweep_id)
    with pytest.raises(NotFound, match="sweep"):
        await db.sweeps.delete(sweep_id)
