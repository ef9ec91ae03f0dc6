"""Every statistic backtesting.py 0.6's `run()` reports, equal to ours to 1e-6 relative: the
peer's GOOG daily bars with two strategies, and synthetic hourly (a market open on weekends)
and weekly bars. Where the peer has NaN or inf (nothing to compute from), ours is None."""

from __future__ import annotations

import math
import warnings
from datetime import timedelta
from typing import Any

import backtesting
import pandas as pd
import pytest

from quantflow_async.backtest import BacktestResult, Bars, run_backtest, synthetic_bars

from .test_peer import CASES, CASH, COMMISSION, PeerSmaCross, run_ours, run_peer

PEER_NAMES = {
    "trades": "# Trades",
    "final_equity": "Equity Final [$]",
    "equity_peak": "Equity Peak [$]",
    "return_pct": "Return [%]",
    "buy_hold_return_pct": "Buy & Hold Return [%]",
    "return_ann_pct": "Return (Ann.) [%]",
    "volatility_pct": "Volatility (Ann.) [%]",
    "cagr_pct": "CAGR [%]",
    "sharpe": "Sharpe Ratio",
    "sortino": "Sortino Ratio",
    "calmar": "Calmar Ratio",
    "max_drawdown_pct": "Max. Drawdown [%]",
    "avg_drawdown_pct": "Avg. Drawdown [%]",
    "max_drawdown_duration": "Max. Drawdown Duration",
    "avg_drawdown_duration": "Avg. Drawdown Duration",
    "exposure_pct": "Exposure Time [%]",
    "win_rate_pct": "Win Rate [%]",
    "best_trade_pct": "Best Trade [%]",
    "worst_trade_pct": "Worst Trade [%]",
    "avg_trade_pct": "Avg. Trade [%]",
    "max_trade_duration": "Max. Trade Duration",
    "avg_trade_duration": "Avg. Trade Duration",
    "profit_factor": "Profit Factor",
    "expectancy_pct": "Expectancy [%]",
    "sqn": "SQN",
    "kelly": "Kelly Criterion",
}


def as_frame(bars: Bars) -> pd.DataFrame:
    index = pd.to_datetime(bars.times, unit="us")
    columns = {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close}
    return pd.DataFrame(columns, index=index)


def peer_run_on(bars: Bars, **params: Any) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = backtesting.Backtest(
            as_frame(bars), PeerSmaCross, cash=CASH, commission=COMMISSION,
            exclusive_orders=True,
        )  # fmt: skip
        return backtest.run(**params)


HOURLY = synthetic_bars(3_000, seed=7, interval=timedelta(hours=1), volatility=0.004)
WEEKLY = synthetic_bars(400, seed=3, interval=timedelta(weeks=1), volatility=0.03)
SMA = {"fast": 10, "slow": 30}


def goog(name: str) -> tuple[pd.Series, BacktestResult]:
    peer_class, config = CASES[name]
    return run_peer(peer_class, **config), run_ours(name, config)


def synthetic(bars: Bars) -> tuple[pd.Series, BacktestResult]:
    ours = run_backtest("sma_cross", bars, SMA, cash=CASH, commission=COMMISSION)
    return peer_run_on(bars, **SMA), ours


RUNS = {
    "goog-sma_cross": lambda: goog("sma_cross"),
    "goog-bollinger": lambda: goog("bollinger"),
    "hourly-sma_cross": lambda: synthetic(HOURLY),
    "weekly-sma_cross": lambda: synthetic(WEEKLY),
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def both(request: pytest.FixtureRequest) -> tuple[pd.Series, BacktestResult]:
    peer, ours = RUNS[request.param]()
    assert peer["# Trades"] >= 5, "the case must trade to mean something"
    return peer, ours


def peer_value(value: Any) -> float | None:
    if isinstance(value, pd.Timedelta):
        return value.total_seconds() / 86_400  # our durations are in days
    number = float(value)
    return number if math.isfinite(number) else None


@pytest.mark.parametrize("key", sorted(PEER_NAMES))
def test_the_statistic_equals_the_peers(both: tuple[pd.Series, BacktestResult], key: str) -> None:
    peer, ours = both
    expected = peer_value(peer[PEER_NAMES[key]])
    if expected is None:
        assert ours.metrics[key] is None
    else:
        assert ours.metrics[key] == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_a_run_without_trades_has_none_for_every_trade_statistic() -> None:
    too_short = synthetic_bars(20, interval=timedelta(hours=1))  # the slow average never forms
    flat = run_backtest("sma_cross", too_short, SMA, cash=CASH)
    assert flat.metrics["trades"] == 0
    for key in ("win_rate_pct", "best_trade_pct", "sqn", "kelly", "buy_hold_return_pct"):
        assert flat.metrics[key] is None, key
