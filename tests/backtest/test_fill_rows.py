"""A sweep worker sends each fill as its driver row, made without a `Fill` each
(`fill_rows`): every row is the one the `Fill` of that execution holds, and an execution the
quick way does not plainly cover goes through `Fill`, with its clear error."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from quantflow_async import Fill, InvalidValue
from quantflow_async.backtest import (
    BacktestResult,
    Strategy,
    conversion,
    run_backtest,
    synthetic_bars,
)
from quantflow_async.backtest.conversion import fill_chunks, fill_rows
from quantflow_async.records import sqlite_rows

HOURLY = synthetic_bars(5_000, seed=3, interval=timedelta(hours=1), volatility=0.004)
CENTS = synthetic_bars(5_000, seed=4, volatility=0.02)


class Fractions(Strategy):
    """Longs and shorts sized as fractions of equity, with brackets: odd quantities."""

    def next(self) -> None:
        bar = len(self.data)
        if bar % 7 == 0 and not self.position:
            price = self.data.close[-1]
            if bar % 2:
                self.buy(size=0.37, sl=price * 0.97, tp=price * 1.05)
            else:
                self.sell(size=0.21, sl=price * 1.03, tp=price * 0.95)


RUNS = {
    "sma_cross, hourly, commission": lambda: run_backtest(
        "sma_cross", HOURLY, {"fast": 3, "slow": 21}, cash=100_000, commission=0.0005
    ),
    "sma_cross, rounded to 2 decimals, slippage": lambda: run_backtest(
        "sma_cross",
        CENTS,
        {"fast": 5, "slow": 20},
        commission=0.002,
        slippage=0.001,
        price_decimals=2,
        money_decimals=4,
    ),  # fmt: skip
    "fractions with brackets, margin": lambda: run_backtest(
        Fractions, CENTS, cash=1_000_000, commission=0.001, margin=0.5
    ),
}


def rows_by_fill(result: BacktestResult, size: int) -> list[tuple[object, ...]]:
    chunks = fill_chunks(result, strategy_id=4, backtest_id=9, size=size)
    return [row for chunk in chunks for row in sqlite_rows(chunk)]


@pytest.mark.parametrize("run", list(RUNS), ids=list(RUNS))
@pytest.mark.parametrize("size", [1, 333, 2_000])
def test_each_row_is_the_one_its_fill_holds(run: str, size: int) -> None:
    result = RUNS[run]()
    assert len(result.executions) > 50
    quick = [
        row for rows in fill_rows(result, strategy_id=4, backtest_id=9, size=size) for row in rows
    ]
    assert quick == rows_by_fill(result, size)
    assert [len(rows) for rows in fill_rows(result, strategy_id=4, backtest_id=9, size=size)] == [
        len(chunk) for chunk in fill_chunks(result, strategy_id=4, backtest_id=9, size=size)
    ]


def test_only_the_first_fill_of_a_symbol_is_made_as_a_fill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = RUNS["sma_cross, hourly, commission"]()
    made: list[object] = []
    real = conversion.execution_fill

    def counted(*args: Any, **kwargs: Any) -> Fill:
        made.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(conversion, "execution_fill", counted)
    rows = [row for rows in fill_rows(result, strategy_id=4, backtest_id=9) for row in rows]
    assert (len(rows), len(made)) == (len(result.executions), 1)


def test_an_execution_outside_the_quick_way_gets_the_fills_own_error() -> None:
    result = RUNS["sma_cross, hourly, commission"]()
    first, second, *rest = result.executions
    odd = dataclasses.replace(result, executions=[first, second._replace(quantity=0), *rest])
    with pytest.raises(InvalidValue, match="quantity: must be > 0"):
        list(fill_rows(odd, strategy_id=4, backtest_id=9))
    huge = dataclasses.replace(result, executions=[first, second._replace(price=1e40)])
    with pytest.raises(InvalidValue, match="price: has more than 38 digits"):
        list(fill_rows(huge, strategy_id=4, backtest_id=9))
    near = dataclasses.replace(result, executions=[first, second._replace(price=9.5e19)])
    assert [row for rows in fill_rows(near, strategy_id=4, backtest_id=9) for row in rows] == (
        rows_by_fill(near, 2_000)
    )
