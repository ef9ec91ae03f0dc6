"""The backtest engine: bars, strategies, a broker with backtesting.py's rules, and metrics.

    result = run_backtest("sma_cross", read_bars("goog.csv"), {"fast": 10, "slow": 20},
                          cash=10_000, commission=0.002)

`run_backtest` is pure and in memory. `run_stored_backtest` (and `resume_backtest`) store
one run: the backtest, its fills through the writer, its metrics and results; `run_sweep`
stores a grid of them, run in worker processes; `run_sweep_on_cluster` runs one on a Dask
cluster (the `cluster` extra), each worker storing its own fills in PostgreSQL.
"""

from quantflow_async.backtest.bars import Bars, read_bars, synthetic_bars
from quantflow_async.backtest.broker import ClosedTrade, Execution
from quantflow_async.backtest.cluster import ClusterSweepResult, run_sweep_on_cluster
from quantflow_async.backtest.conversion import RunSpec
from quantflow_async.backtest.engine import BacktestResult, run_backtest
from quantflow_async.backtest.runner import resume_backtest, run_stored_backtest
from quantflow_async.backtest.strategies import (
    STRATEGIES,
    Bollinger,
    SmaCross,
    crossover,
    sma,
    strategy_class,
)
from quantflow_async.backtest.strategy import Series, Strategy
from quantflow_async.backtest.sweep import SweepProgress, SweepResult, expand_grid, run_sweep
from quantflow_async.errors import BacktestFailed, BarsError, StrategyConfigError

__all__ = [
    "BacktestFailed",
    "BacktestResult",
    "Bars",
    "BarsError",
    "Bollinger",
    "ClosedTrade",
    "ClusterSweepResult",
    "Execution",
    "RunSpec",
    "STRATEGIES",
    "Series",
    "SmaCross",
    "Strategy",
    "StrategyConfigError",
    "SweepProgress",
    "SweepResult",
    "crossover",
    "expand_grid",
    "read_bars",
    "resume_backtest",
    "run_backtest",
    "run_stored_backtest",
    "run_sweep",
    "run_sweep_on_cluster",
    "sma",
    "strategy_class",
    "synthetic_bars",
]
