"""Agreement with backtesting.py 0.6, the peer: the same strategy on the same data, run by both.

The peer's own SmaCross example on its bundled GOOG daily bars, and a Bollinger mean-reversion
strategy written for each engine. The peer warns (trades left open, pandas deprecations);
those warnings are silenced around its run only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import backtesting
import backtesting.test
import pandas as pd
import pytest
from backtesting.lib import crossover as peer_crossover
from backtesting.test import GOOG

from quantflow_async.backtest import BacktestResult, read_bars, run_backtest

GOOG_CSV = Path(backtesting.test.__file__).parent / "GOOG.csv"
CASH = 10_000
COMMISSION = 0.002


class PeerSmaCross(backtesting.Strategy):
    """backtesting.py's SmaCross example, as its documentation writes it."""

    fast = 10
    slow = 20

    def init(self) -> None:
        close = self.data.Close
        self.fast_ma = self.I(backtesting.test.SMA, close, self.fast)
        self.slow_ma = self.I(backtesting.test.SMA, close, self.slow)

    def next(self) -> None:
        if peer_crossover(self.fast_ma, self.slow_ma):
            self.position.close()
            self.buy()
        elif peer_crossover(self.slow_ma, self.fast_ma):
            self.position.close()
            self.sell()


def peer_band(close: Any, window: int, k: float, side: int) -> pd.Series:
    series = pd.Series(close)
    return series.rolling(window).mean() + side * k * series.rolling(window).std(ddof=0)


class PeerBollinger(backtesting.Strategy):
    """Our `bollinger` strategy, written for backtesting.py with pandas' rolling windows."""

    window = 20
    k = 2.0

    def init(self) -> None:
        close = self.data.Close
        self.lower = self.I(peer_band, close, self.window, self.k, -1)
        self.middle = self.I(peer_band, close, self.window, 0.0, 0)
        self.upper = self.I(peer_band, close, self.window, self.k, 1)

    def next(self) -> None:
        close = self.data.Close[-1]
        if close < self.lower[-1] and not self.position.is_long:
            self.position.close()
            self.buy()
        elif close > self.upper[-1] and not self.position.is_short:
            self.position.close()
            self.sell()
        elif self.position.is_long and close >= self.middle[-1]:
            self.position.close()
        elif self.position.is_short and close <= self.middle[-1]:
            self.position.close()


def run_peer(strategy: type[backtesting.Strategy], **params: Any) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = backtesting.Backtest(
            GOOG, strategy, cash=CASH, commission=COMMISSION, exclusive_orders=True
        )
        return backtest.run(**params)


def run_ours(name: str, config: dict[str, Any]) -> BacktestResult:
    return run_backtest(name, read_bars(GOOG_CSV), config, cash=CASH, commission=COMMISSION)


CASES = {
    "sma_cross": (PeerSmaCross, {"fast": 10, "slow": 20}),
    "bollinger": (PeerBollinger, {"window": 20, "k": 2.0}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def both(request: pytest.FixtureRequest) -> tuple[pd.Series, BacktestResult]:
    peer_class, config = CASES[request.param]
    return run_peer(peer_class, **config), run_ours(request.param, config)


def test_the_case_trades_enough_to_mean_something(both: tuple[pd.Series, BacktestResult]) -> None:
    peer, _ = both
    assert peer["# Trades"] >= 20


def test_closed_trades_are_equal(both: tuple[pd.Series, BacktestResult]) -> None:
    peer, ours = both
    assert ours.metrics["trades"] == peer["# Trades"]


def test_trade_by_trade_entries_exits_and_sizes_agree(
    both: tuple[pd.Series, BacktestResult],
) -> None:
    peer, ours = both
    theirs = peer["_trades"]
    assert [t.size for t in ours.trades] == theirs["Size"].tolist()
    assert [t.entry_bar for t in ours.trades] == theirs["EntryBar"].tolist()
    assert [t.exit_bar for t in ours.trades] == theirs["ExitBar"].tolist()
    assert [t.pnl for t in ours.trades] == pytest.approx(theirs["PnL"].tolist())


def test_final_equity_is_within_a_tenth_of_a_percent(
    both: tuple[pd.Series, BacktestResult],
) -> None:
    peer, ours = both
    assert ours.metrics["final_equity"] == pytest.approx(peer["Equity Final [$]"], rel=1e-3)


def test_max_drawdown_is_within_a_tenth_of_a_point(both: tuple[pd.Series, BacktestResult]) -> None:
    peer, ours = both
    assert ours.metrics["max_drawdown_pct"] == pytest.approx(peer["Max. Drawdown [%]"], abs=0.1)


def test_win_rate_is_equal(both: tuple[pd.Series, BacktestResult]) -> None:
    peer, ours = both
    assert ours.metrics["win_rate_pct"] == pytest.approx(peer["Win Rate [%]"], rel=1e-12)


def test_commissions_of_closed_trades_are_within_a_tenth_of_a_percent(
    both: tuple[pd.Series, BacktestResult],
) -> None:
    # The peer counts the commissions of closed trades; our `fees` also holds the entry
    # commission of the lot still open at the end (docs/backtest.md).
    peer, ours = both
    closed = sum(t.commission for t in ours.trades)
    assert closed == pytest.approx(peer["Commissions [$]"], rel=1e-3)
    open_entry = ours.executions[-1].commission if ours.position else 0.0  # exclusive orders
    assert ours.metrics["fees"] == pytest.approx(closed + open_entry)


def test_equity_curves_agree_bar_by_bar(both: tuple[pd.Series, BacktestResult]) -> None:
    peer, ours = both
    assert ours.equity.tolist() == pytest.approx(peer["_equity_curve"]["Equity"].tolist())


def test_drawdown_duration_agrees(both: tuple[pd.Series, BacktestResult]) -> None:
    peer, ours = both
    assert ours.metrics["max_drawdown_duration_days"] == peer["Max. Drawdown Duration"].days


def test_cagr_agrees(both: tuple[pd.Series, BacktestResult]) -> None:
    peer, ours = both
    assert ours.metrics["cagr_pct"] == pytest.approx(peer["CAGR [%]"])
