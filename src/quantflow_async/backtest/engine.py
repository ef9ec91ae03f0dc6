"""`run_backtest`: one strategy over one series of bars, in memory, with no database.

The loop is plain Python over lists made once from the numpy arrays: per bar it fills what
the broker has pending, records close-of-bar equity and calls the strategy's `next`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from quantflow_async.backtest.bars import Bars, FloatArray, IntArray, utc_datetime
from quantflow_async.backtest.broker import Broker
from quantflow_async.backtest.executions import ClosedTrade, Execution
from quantflow_async.backtest.matching import process_orders
from quantflow_async.backtest.metrics import (
    MAX_CURVE_POINTS,
    compute_metrics,
    downsample,
    per_symbol,
)
from quantflow_async.backtest.settings import check_settings as check_settings  # and here
from quantflow_async.backtest.strategies import STRATEGIES, strategy_class
from quantflow_async.backtest.strategy import Clock, Strategy


@dataclass(frozen=True, slots=True, eq=False)
class BacktestResult:
    """What a run produced: executions, closed trades, the equity curve and its metrics.

    `equity[i]` is the equity at bar i's close, `times` the bars' UTC epoch microseconds.
    `metrics` and `by_symbol` hold JSON-safe values only. `position` is the open position
    left at the end (in units; it counts in the final equity but not as a trade).
    `price_decimals` and `money_decimals` are what the stored fills are rounded to (None:
    prices by their shortest repr).
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
    price_decimals: int | None = None
    money_decimals: int = 8

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
    margin: float = 1.0,
    trade_on_close: bool = False,
    hedging: bool = False,
    finalize_trades: bool = False,
    spread: float = 0.0,
    price_decimals: int | None = None,
    money_decimals: int = 8,
) -> BacktestResult:
    """Run `strategy` (a registered name or a Strategy subclass) over `bars`.

    `commission` is a fraction of notional paid at entry and again at exit; `slippage` a
    fraction of price every fill not at a limit gives away; `spread` a fraction of price
    every entry pays; `margin` the share of a position's value the account must hold
    (0.5: leverage 2). `trade_on_close` fills market orders at the close of the bar they
    were placed on; `hedging` lets opposite trades stand side by side instead of closing
    FIFO; `exclusive_orders` makes every new order close the position and cancel the other
    orders first; `finalize_trades` closes what is open at the last bar so it counts as
    trades. `periods_per_year` overrides the annualisation inferred from the bar spacing.
    `price_decimals` and `money_decimals` say how the run's fills are rounded when stored.
    Raises StrategyConfigError for a bad setting.
    """
    cls = strategy_class(strategy) if isinstance(strategy, str) else strategy
    check_settings(
        cash=cash,
        commission=commission,
        slippage=slippage,
        exclusive_orders=exclusive_orders,
        symbol=symbol,
        periods_per_year=periods_per_year,
        margin=margin,
        trade_on_close=trade_on_close,
        hedging=hedging,
        finalize_trades=finalize_trades,
        spread=spread,
        price_decimals=price_decimals,
        money_decimals=money_decimals,
    )
    instance = cls(config)
    broker = Broker(
        bars,
        symbol=symbol,
        cash=cash,
        commission=commission,
        slippage=slippage,
        exclusive_orders=exclusive_orders,
        margin=margin,
        trade_on_close=trade_on_close,
        hedging=hedging,
        spread=spread,
    )
    clock = Clock(len(bars))
    instance.attach(bars, broker, clock)
    equity = _simulate(instance, broker, clock, bars, float(cash), finalize=finalize_trades)
    executions = tuple(broker.executions)
    trades = tuple(broker.closed_trades)
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
        price_decimals=price_decimals,
        money_decimals=money_decimals,
    )


def _simulate(
    strategy: Strategy, broker: Broker, clock: Clock, bars: Bars, cash: float, *, finalize: bool
) -> list[float]:
    """The bar loop; returns close-of-bar equity for every bar.

    Bars before the strategy's first `next` (the indicators' warm-up) keep the starting cash.
    """
    count = len(bars)
    closes = bars.close.tolist()
    equity = [cash] * count
    step = strategy.next
    orders = broker.orders  # the broker's own list: an order placed shows in it at once
    start = 1 + strategy.warmup
    for i in range(start, count):
        clock.end = i + 1
        if orders:
            process_orders(broker, i)  # Broker.execute's work, one call less on every bar
        value = broker.cash + (closes[i] * broker.position_size - broker.cost)
        if value <= 0:
            broker.liquidate(i)
            equity[i:] = [0.0] * (count - i)
            return equity
        equity[i] = value
        step()
    if finalize and start < count:
        # The peer closes what is open with orders filled by one more pass over the last bar.
        last = count - 1
        broker.finalize()
        broker.execute(last)
        value = broker.cash + (closes[last] * broker.position_size - broker.cost)
        if value <= 0:
            broker.liquidate(last)
            value = 0.0
        equity[last] = value
    return equity


def _name_of(cls: type[Strategy]) -> str:
    for name, registered in STRATEGIES.items():
        if registered is cls:
            return name
    return cls.__name__
