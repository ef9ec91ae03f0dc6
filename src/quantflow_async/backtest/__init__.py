"""The backtest engine: bars, strategies, a broker with backtesting.py's rules, and metrics.

    result = run_backtest("sma_cross", read_bars("goog.csv"), {"fast": 10, "slow": 20},
                          cash=10_000, commission=0.002)

`run_backtest` is pure and in memory. `run_stored_backtest` (and `resume_backtest`) store
one run: the backtest, its fills through the writer, its metrics and results; `run_sweep`
stores a grid of them, run in worker processes, and `run_search` the trials of a search
(Optuna's samplers, the `optimize` extra); `run_sweep_on_cluster` runs one on a Dask
cluster (the `cluster` extra), each worker storing its own fills in PostgreSQL.

Each name loads its module when first used (PEP 562), so importing one module of the
package (the engine, the bars) does not load the others: a run does not load the sweep or
the cluster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantflow_async.backtest.bars import Bars, read_bars, synthetic_bars
    from quantflow_async.backtest.broker import ClosedTrade, Execution
    from quantflow_async.backtest.cluster import ClusterSweepResult, run_sweep_on_cluster
    from quantflow_async.backtest.engine import BacktestResult, run_backtest
    from quantflow_async.backtest.orders import Order
    from quantflow_async.backtest.runner import resume_backtest, run_stored_backtest
    from quantflow_async.backtest.search_sweep import SearchResult, run_search
    from quantflow_async.backtest.spec import RunOptions, RunSpec
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
    from quantflow_async.backtest.trades import Position, Trade
    from quantflow_async.backtest.trailing import TrailingStrategy
    from quantflow_async.errors import BacktestFailed, BarsError, StrategyConfigError

_WHERE: dict[str, str] = {
    "Bars": "quantflow_async.backtest.bars",
    "read_bars": "quantflow_async.backtest.bars",
    "synthetic_bars": "quantflow_async.backtest.bars",
    "ClosedTrade": "quantflow_async.backtest.broker",
    "Execution": "quantflow_async.backtest.broker",
    "ClusterSweepResult": "quantflow_async.backtest.cluster",
    "run_sweep_on_cluster": "quantflow_async.backtest.cluster",
    "RunOptions": "quantflow_async.backtest.spec",
    "RunSpec": "quantflow_async.backtest.spec",
    "Order": "quantflow_async.backtest.orders",
    "Position": "quantflow_async.backtest.trades",
    "Trade": "quantflow_async.backtest.trades",
    "TrailingStrategy": "quantflow_async.backtest.trailing",
    "BacktestResult": "quantflow_async.backtest.engine",
    "run_backtest": "quantflow_async.backtest.engine",
    "resume_backtest": "quantflow_async.backtest.runner",
    "run_stored_backtest": "quantflow_async.backtest.runner",
    "SearchResult": "quantflow_async.backtest.search_sweep",
    "run_search": "quantflow_async.backtest.search_sweep",
    "STRATEGIES": "quantflow_async.backtest.strategies",
    "Bollinger": "quantflow_async.backtest.strategies",
    "SmaCross": "quantflow_async.backtest.strategies",
    "crossover": "quantflow_async.backtest.strategies",
    "sma": "quantflow_async.backtest.strategies",
    "strategy_class": "quantflow_async.backtest.strategies",
    "Series": "quantflow_async.backtest.strategy",
    "Strategy": "quantflow_async.backtest.strategy",
    "SweepProgress": "quantflow_async.backtest.sweep",
    "SweepResult": "quantflow_async.backtest.sweep",
    "expand_grid": "quantflow_async.backtest.sweep",
    "run_sweep": "quantflow_async.backtest.sweep",
    "BacktestFailed": "quantflow_async.errors",
    "BarsError": "quantflow_async.errors",
    "StrategyConfigError": "quantflow_async.errors",
}

__all__ = [
    "BacktestFailed",
    "BacktestResult",
    "Bars",
    "BarsError",
    "Bollinger",
    "ClosedTrade",
    "ClusterSweepResult",
    "Execution",
    "Order",
    "Position",
    "RunOptions",
    "RunSpec",
    "STRATEGIES",
    "SearchResult",
    "Series",
    "SmaCross",
    "Strategy",
    "StrategyConfigError",
    "SweepProgress",
    "SweepResult",
    "Trade",
    "TrailingStrategy",
    "crossover",
    "expand_grid",
    "read_bars",
    "resume_backtest",
    "run_backtest",
    "run_search",
    "run_stored_backtest",
    "run_sweep",
    "run_sweep_on_cluster",
    "sma",
    "strategy_class",
    "synthetic_bars",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'quantflow_async.backtest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain one
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
