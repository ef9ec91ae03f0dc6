"""The backtest engine: bars, strategies, a broker with backtesting.py's rules, and metrics.

    result = run_backtest("sma_cross", read_bars("goog.csv"), {"fast": 10, "slow": 20},
                          cash=10_000, commission=0.002)

Pure and in memory; storing a result's executions as fills is the caller's job.
"""

from quantflow_async.backtest.bars import Bars, BarsError, read_bars, synthetic_bars
from quantflow_async.backtest.broker import ClosedTrade, Execution
from quantflow_async.backtest.engine import BacktestResult, run_backtest
from quantflow_async.backtest.strategies import (
    STRATEGIES,
    Bollinger,
    SmaCross,
    crossover,
    sma,
    strategy_class,
)
from quantflow_async.backtest.strategy import Series, Strategy, StrategyConfigError

__all__ = [
    "STRATEGIES",
    "BacktestResult",
    "Bars",
    "BarsError",
    "Bollinger",
    "ClosedTrade",
    "Execution",
    "Series",
    "SmaCross",
    "Strategy",
    "StrategyConfigError",
    "crossover",
    "read_bars",
    "run_backtest",
    "sma",
    "strategy_class",
    "synthetic_bars",
]
