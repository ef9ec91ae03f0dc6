"""`run_backtest`: one strategy over one series of bars, in memory, with no database.

The loop is plain Python over lists made once from the numpy arrays: per bar it fills what
the broker has pending, records close-of-bar equity and calls the strategy's `next`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from quantflow_async.backtest.bars import Bars, FloatArray, IntArray, utc_datetime
from quantflow_async.backtest.broker import Broker, ClosedTrade, Execution
from quantflow_async.backtest.metrics import (
    MAX_CURVE_POINTS,
    compute_metrics,
    downsample,
    per_symbol,
)
from quantflow_async.backtest.strategies import STRATEGIES, strategy_class
from quantflow_async.backtest.strategy import Clock, Strategy, StrategyConfigError


@dataclass(frozen=True, slots=True, eq=False)
class BacktestResult:
    """What a run produced: executions, closed trades, the equity curve and its metrics.

    `equity[i]` is the equity at bar i's close, `times` the bars' UTC epoch microseconds.
    `metrics` and `by_symbol` hold JSON-safe values only. `position` is the open position
    left at the end (in units; it counts in the final equity but not as a trade).
    """

    strategy: str
    config: dict[str, Any]
    symbol: str
    executions: tuple[Execution, ...]
    trades: tuple[ClosedTrade, ...]
    times: IntArray
    equity: FloatArray
    metrics: dict[str, Any]
    by_symbol: dict[str, dict[str, Any]]
    position: int
    cancelled_orders: int

    def equity_curve(self, max_points: int = MAX_CURVE_POINTS) -> list[tuple[datetime, float]]:
        """(time, equity) at most `max_points` long, keeping every drawdown's peak and trough."""
        kept = downsample(self.equity, max_points)
        return [(utc_datetime(int(self.times[i])), float(self.equity[i])) for i in kept]


def run_backtest(
    strategy: str | type[Strategy],
    bars: Bars,
    config: Mapping[str, Any] | None = None,
    cash: float = 10_000.0,
    commission: float = 0.0,
    *,
    exclusive_orders: bool = True,
    slippage: float = 0.0,
    symbol: str = "ASSET",
    periods_per_year: float | None = None,
) -> BacktestResult:
    """Run `strategy` (a registered name or a Strategy subclass) over `bars`.

    `commission` is a fraction of notional paid at entry and again at exit; `slippage` a
    fraction of price every market execution gives away. `periods_per_year` overrides the
    annualisation inferred from the bar spacing. Raises StrategyConfigError for a bad setting.
    """
    cls = strategy_class(strategy) if isinstance(strategy, str) else strategy
    check_settings(
        cash=cash,
        commission=commission,
        slippage=slippage,
        exclusive_orders=exclusive_orders,
        symbol=symbol,
        periods_per_year=periods_per_year,
    )
    instance = cls(config)
    broker = Broker(
        bars,
        symbol=symbol,
        cash=cash,
        commission=commission,
        slippage=slippage,
        exclusive_orders=exclusive_orders,
    )
    clock = Clock(len(bars))
    instance.attach(bars, broker, clock)
    equity = _simulate(instance, broker, clock, bars, float(cash))
    executions = tuple(broker.executions)
    trades = tuple(broker.trades)
    curve = np.asarray(equity, dtype=np.float64)
    metrics = compute_metrics(
        curve,
        bars.times,
        trades,
        executions,
        cash=float(cash),
        closes=bars.close,
        first_trading_bar=instance.warmup,
        periods=periods_per_year,
    )
    return BacktestResult(
        strategy=_name_of(cls),
        config=dict(instance.config),
        symbol=symbol,
        executions=executions,
        trades=trades,
        times=bars.times,
        equity=curve,
        metrics=metrics,
        by_symbol=per_symbol(trades, executions),
        position=broker.position_size,
        cancelled_orders=broker.cancelled_orders,
    )


def _simulate(
    strategy: Strategy, broker: Broker, clock: Clock, bars: Bars, cash: float
) -> list[float]:
    """The bar loop; returns close-of-bar equity for every bar.

    Bars before the strategy's first `next` (the indicators' warm-up) keep the starting cash.
    """
    count = len(bars)
    closes = bars.close.tolist()
    equity = [cash] * count
    step = strategy.next
    for i in range(1 + strategy.warmup, count):
        clock.end = i + 1
        if broker.pending:
            broker.execute(i)
        size = broker.position_size
        value = broker.cash + (closes[i] * size - broker.cost)
        if value <= 0:
            broker.liquidate(i)
            equity[i:] = [0.0] * (count - i)
            break
        equity[i] = value
        step()
    return equity


def check_settings(
    *,
    cash: float,
    commission: float,
    slippage: float,
    exclusive_orders: bool,
    symbol: str,
    periods_per_year: float | None,
) -> None:
    """Every run setting but the strategy's parameters, or StrategyConfigError naming it.

    The one check of them: `run_backtest` makes it, and `RunSpec.of` makes it before a
    stored backtest or a sweep stores anything.
    """
    _check_setting("cash", cash, low=0.0, low_inclusive=False)
    _check_setting("commission", commission, low=0.0, high=1.0)
    _check_setting("slippage", slippage, low=0.0, high=1.0)
    if periods_per_year is not None:
        _check_setting("periods_per_year", periods_per_year, low=0.0, low_inclusive=False)
    if not isinstance(exclusive_orders, bool):
        raise StrategyConfigError(
            "exclusive_orders", f"must be True or False, got {exclusive_orders!r}"
        )
    if not isinstance(symbol, str) or not symbol.strip():
        raise StrategyConfigError("symbol", f"must be a name that is not blank, got {symbol!r}")


def _check_setting(
    key: str,
    value: float,
    *,
    low: float,
    high: float = math.inf,
    low_inclusive: bool = True,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StrategyConfigError(key, f"must be a finite number, got {value!r}")
    if value < low or (value == low and not low_inclusive) or value >= high:
        bounds = f"{'[' if low_inclusive else '('}{low}, {high})"
        raise StrategyConfigError(key, f"must be in {bounds}, got {value!r}")


def _name_of(cls: type[Strategy]) -> str:
    for name, registered in STRATEGIES.items():
        if registered is cls:
            return name
    return cls.__name__
