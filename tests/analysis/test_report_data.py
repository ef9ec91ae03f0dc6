"""What a report is drawn from: trades rebuilt from the stored fills as the engine closed them,
and the price read again from the backtest's bars file, merged into candles when long."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantflow_async import Database
from quantflow_async.analysis import load_report
from quantflow_async.analysis.report_price import candles
from quantflow_async.analysis.round_trips import RoundTripBuilder, StoredFill
from quantflow_async.backtest import read_bars, run_backtest
from quantflow_async.errors import InvalidValue

from .support import backtest_of_file, quantflow, write_bars_csv


def _fill(number: int, quantity: float, price: float, fee: float = 0.0) -> StoredFill:
    return StoredFill(number, "ASSET", quantity, price, fee, float(number))


def test_a_fill_against_the_position_closes_the_oldest_lots_first() -> None:
    trades = RoundTripBuilder()
    for fill in (_fill(1, 10, 100.0, 1.0), _fill(2, 5, 110.0), _fill(3, -12, 120.0, 1.2)):
        trades.add(fill)
    closed = trades.build()
    assert closed.size.tolist() == [10, 2]
    assert closed.entry_fill.tolist() == [1, 2] and closed.exit_fill.tolist() == [3, 3]
    # the first: 10 x (120 - 100), less its entry fee and 10/12 of the exit's
    assert closed.pnl.tolist() == pytest.approx([200 - 1.0 - 1.0, 2 * 10 - 0.2])
    left = trades.still_open()
    assert left.size.tolist() == [3] and left.entry_fill.tolist() == [2]


def test_a_reversal_closes_the_position_and_opens_the_other_side() -> None:
    trades = RoundTripBuilder()
    for fill in (_fill(1, -4, 50.0), _fill(2, 10, 40.0)):
        trades.add(fill)
    closed, left = trades.build(), trades.still_open()
    assert closed.size.tolist() == [-4] and closed.pnl.tolist() == [40.0]  # a short that won
    assert left.size.tolist() == [6] and left.entry_price.tolist() == [40.0]


def test_the_rebuilt_trades_are_the_engines_closed_trades(tmp_path: Path) -> None:
    bars = read_bars(write_bars_csv(tmp_path / "b.csv", 3_000))
    result = run_backtest("sma_cross", bars, {"fast": 8, "slow": 55}, 100_000, 0.0005)
    trades = RoundTripBuilder()
    for execution in result.executions:
        side = 1 if execution.side == "buy" else -1
        trades.add(StoredFill(execution.sequence, execution.symbol, side * execution.quantity,
                              execution.price, execution.commission,
                              execution.time.timestamp()))  # fmt: skip
    rebuilt = trades.build()
    assert len(rebuilt) == len(result.trades) > 50
    assert rebuilt.size.tolist() == [t.size for t in result.trades]
    assert rebuilt.entry_price.tolist() == [t.entry_price for t in result.trades]
    assert rebuilt.exit_price.tolist() == [t.exit_price for t in result.trades]
    assert rebuilt.pnl.tolist() == pytest.approx([t.pnl for t in result.trades], rel=1e-9)


def test_long_series_are_merged_into_candles_of_consecutive_bars() -> None:
    times = np.arange(25, dtype=np.float64)
    opens, closes = times + 100, times + 100.5
    highs, lows = times + 101, times + 99
    merged = candles("x", times, opens, highs, lows, closes, max_candles=10)
    assert merged.per_candle == 3 and len(merged) == 9
    assert merged.times.tolist() == times[::3].tolist()
    assert merged.open.tolist() == opens[::3].tolist()
    assert merged.high.tolist() == [highs[min(i + 2, 24)] for i in range(0, 25, 3)]
    assert merged.low.tolist() == lows[::3].tolist()
    assert merged.close.tolist() == [closes[min(i + 2, 24)] for i in range(0, 25, 3)]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_bars_given_that_are_not_the_backtests_are_refused(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    backtest = await backtest_of_file(db, strategy_id, write_bars_csv(tmp_path / "b.csv", 300))
    other = write_bars_csv(tmp_path / "other.csv", 299)
    with pytest.raises(InvalidValue, match=r"data: .*other.csv has 299 bars from .*, not the "
                       rf"bars backtest {backtest.id} ran on \(300 bars from"):  # fmt: skip
        await load_report(db, backtest.id, data=other)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_bars_given_draw_the_price_of_a_backtest_whose_file_is_gone(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    data = write_bars_csv(tmp_path / "b.csv", 300)
    backtest = await backtest_of_file(db, strategy_id, data)
    moved = data.rename(tmp_path / "moved.csv")
    without = quantflow(db.settings.database_url, "report", str(backtest.id), "-o", "a.html",
                        cwd=tmp_path)  # fmt: skip
    assert without.returncode == 0, without.stderr
    assert without.stderr == (
        f"no price panel: its bars file {str(data)!r} is not there; give the bars with "
        "--data FILE\n"
    )
    given = quantflow(db.settings.database_url, "report", str(backtest.id), "-o", "b.html",
                      "--data", str(moved), cwd=tmp_path)  # fmt: skip
    assert given.returncode == 0 and given.stderr == "", given.stderr
    assert "candles" not in (tmp_path / "a.html").read_text()[-20_000:]
    assert "price: 300 bars of" in (tmp_path / "b.html").read_text()
