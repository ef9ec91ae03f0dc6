"""One backtest run into the store: its row, status, fills, metrics and results (both backends)."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import anyio
import numpy as np
import pytest

from quantflow_async import Database, InvalidTransition
from quantflow_async.backtest import (
    BacktestFailed,
    StrategyConfigError,
    resume_backtest,
    run_backtest,
    run_stored_backtest,
    synthetic_bars,
)
from quantflow_async.backtest.metrics import max_drawdown_pct
from quantflow_async.backtest.rounding import rounded
from tests.backtest.sweep_child import BARS, RUN_BARS, Exploding
from tests.conftest import POSTGRES_ROUND_IN_CI

ROOT = Path(__file__).resolve().parents[2]
BARS_2K = synthetic_bars(2_000, seed=5)
CONFIG = {"fast": 5, "slow": 20}


async def test_every_execution_is_stored_as_a_fill_of_the_backtest(
    db: Database, strategy_id: int
) -> None:
    backtest = await run_stored_backtest(
        db, "sma_cross", BARS_2K, CONFIG, strategy_id=strategy_id, commission=0.002
    )
    expected = run_backtest("sma_cross", BARS_2K, CONFIG, commission=0.002).executions
    trades = [t async for t in db.trades.stream(backtest_id=backtest.id)]
    assert len(trades) == len(expected) > 10
    by_id = {t.external_id: t for t in trades}
    for execution in expected:
        trade = by_id[f"backtest-{backtest.id}-{execution.sequence}"]
        assert (trade.side, trade.quantity, trade.symbol) == (
            execution.side,
            Decimal(execution.quantity),
            "ASSET",
        )
        assert trade.price == Decimal(repr(execution.price))
        assert trade.fee == rounded(execution.commission, 8)  # money to 8 decimals, half-even
        assert trade.executed_at == execution.time
        # pnl is the realized FIFO pnl before commissions; None on a fill that only opened
        assert trade.pnl == (None if execution.pnl is None else rounded(execution.pnl, 8))


async def test_stored_pnl_less_stored_fees_is_the_change_in_cash(
    db: Database, strategy_id: int
) -> None:
    backtest = await run_stored_backtest(
        db, "sma_cross", BARS_2K, CONFIG, strategy_id=strategy_id, commission=0.002
    )
    result = run_backtest("sma_cross", BARS_2K, CONFIG, commission=0.002)
    trades = [t async for t in db.trades.stream(backtest_id=backtest.id)]
    pnl = sum((t.pnl for t in trades if t.pnl is not None), Decimal(0))
    fees = sum((t.fee for t in trades if t.fee is not None), Decimal(0))
    # Equity is cash plus the open lot marked to the last close; under exclusive orders the
    # last execution opened that lot.
    entry = result.executions[-1].price if result.position else 0.0
    final_cash = result.metrics["final_equity"] - result.position * (BARS_2K.close[-1] - entry)
    assert float(pnl - fees) == pytest.approx(final_cash - 10_000, abs=1e-6)


async def test_a_completed_backtest_holds_its_metrics_results_dates_and_config(
    db: Database, strategy_id: int
) -> None:
    backtest = await run_stored_backtest(
        db, "sma_cross", BARS_2K, CONFIG, strategy_id=strategy_id, cash=5_000, commission=0.002
    )
    result = run_backtest("sma_cross", BARS_2K, CONFIG, cash=5_000, commission=0.002)
    stored = await db.backtests.get(backtest.id)
    assert stored.status == "completed"
    assert stored.metrics == result.metrics
    assert (stored.start_date, stored.end_date) == (BARS_2K.time_at(0), BARS_2K.time_at(1999))
    assert stored.initial_capital == Decimal(5000)
    assert stored.config["strategy"] == "sma_cross"
    assert stored.config["parameters"] == {"fast": 5, "slow": 20}
    assert stored.config["commission"] == 0.002
    assert stored.results is not None
    assert stored.results["by_symbol"] == result.by_symbol
    curve = stored.results["equity_curve"]
    assert len(curve["time"]) == len(curve["equity"]) == 2_000  # short: every bar kept
    assert curve["equity"] == [round(value, 2) for value in result.equity.tolist()]
    assert curve["time"][0] == BARS_2K.times[0] // 1_000_000  # epoch seconds


async def test_a_long_equity_curve_is_downsampled_keeping_the_max_drawdown(
    db: Database, strategy_id: int
) -> None:
    bars = synthetic_bars(60_000, seed=2)
    backtest = await run_stored_backtest(
        db, "sma_cross", bars, {"fast": 50, "slow": 200}, strategy_id=strategy_id
    )
    assert backtest.results is not None
    curve = np.array(backtest.results["equity_curve"]["equity"])
    # as many points as fit the store's 64 KiB JSON limit, never more than 10,000
    assert 2_000 < len(curve) == backtest.results["equity_curve_points"] <= 10_000
    assert backtest.metrics is not None
    deepest = backtest.metrics["max_drawdown_pct"]
    assert max_drawdown_pct(curve) == pytest.approx(deepest, abs=1e-4)  # cents rounding


async def test_a_strategy_that_raises_leaves_the_backtest_failed_with_the_error(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(BacktestFailed, match="exploded on bar 300") as caught:
        await run_stored_backtest(
            db, Exploding, BARS_2K, {"explode_at": 300}, strategy_id=strategy_id
        )
    assert isinstance(caught.value.__cause__, RuntimeError)
    backtest = await db.backtests.get(caught.value.backtest_id)
    assert backtest.status == "failed"
    assert backtest.results is not None
    assert backtest.results["error"]["type"] == "RuntimeError"
    assert backtest.results["error"]["message"] == "exploded on bar 300"
    assert await db.trades.count(backtest_id=backtest.id) == 0


async def test_a_bad_parameter_is_refused_before_anything_is_stored(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(StrategyConfigError, match="fats: not a parameter of SmaCross"):
        await run_stored_backtest(db, "sma_cross", BARS_2K, {"fats": 5}, strategy_id=strategy_id)
    assert await db.backtests.list() == []


@POSTGRES_ROUND_IN_CI
async def test_a_cancelled_run_is_marked_cancelled_and_keeps_its_committed_fills(
    db: Database, strategy_id: int
) -> None:
    bars = synthetic_bars(BARS, seed=7, drift=0.0)
    async with db.writer(batch_size=200, max_queue=400) as writer:
        async with anyio.create_task_group() as tasks:

            async def run() -> None:
                await run_stored_backtest(
                    db, "sma_cross", bars, {"fast": 2, "slow": 5}, strategy_id=strategy_id,
                    writer=writer,
                )  # fmt: skip

            tasks.start_soon(run)
            with anyio.fail_after(60):
                while not writer.stats().written:
                    await anyio.sleep(0.001)
            tasks.cancel_scope.cancel()
        committed = writer.stats().written
    (backtest,) = await db.backtests.list()
    assert backtest.status == "cancelled"
    stored = await db.trades.count(backtest_id=backtest.id)
    executions = len(run_backtest("sma_cross", bars, {"fast": 2, "slow": 5}).executions)
    assert committed <= stored < executions  # what was accepted is committed, not the rest


@POSTGRES_ROUND_IN_CI
async def test_a_backtest_resumed_after_its_process_was_killed_stores_no_fill_twice(
    db: Database, database_url: str
) -> None:
    with anyio.fail_after(120):
        child = await anyio.run_process(
            [sys.executable, "-m", "tests.backtest.sweep_child", "run", database_url],
            cwd=ROOT,
            check=False,
        )
    assert child.returncode == -9, child.stderr.decode()  # SIGKILLed itself mid-run
    (backtest,) = await db.backtests.list()
    assert backtest.status == "running"
    before = await db.trades.count(backtest_id=backtest.id)
    bars = synthetic_bars(RUN_BARS, seed=7, drift=0.0)
    executions = run_backtest("sma_cross", bars, {"fast": 2, "slow": 5}).executions
    assert 0 < before < len(executions)

    async with db.writer() as writer:
        resumed = await resume_backtest(db, backtest.id, bars, writer=writer)
        assert writer.stats().duplicates == before

    assert resumed.status == "completed"
    trades = [t async for t in db.trades.stream(backtest_id=backtest.id)]
    ids = [t.external_id for t in trades]
    assert len(ids) == len(set(ids)) == len(executions)


async def test_a_finished_backtest_cannot_be_resumed(db: Database, strategy_id: int) -> None:
    backtest = await run_stored_backtest(db, "sma_cross", BARS_2K, strategy_id=strategy_id)
    with pytest.raises(InvalidTransition, match="'completed' to 'running'"):
        await resume_backtest(db, backtest.id, BARS_2K)
