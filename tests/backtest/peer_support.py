"""Running one strategy in both engines: ours and backtesting.py 0.6, the peer.

A strategy is written once, as `decide(strategy, close, bar)`, against the names both
engines share (buy, sell, trades, orders, position, closed_trades, Trade.sl ...); it is
wrapped into a class for each engine. Indicators are plain arrays made once from the whole
series and read at `bar` only, so both engines see the same values and start on bar 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import backtesting
import numpy as np
import pandas as pd
import pytest
from backtesting.lib import TrailingStrategy as PeerTrailingStrategy
from backtesting.test import GOOG

from quantflow_async.backtest import BacktestResult, Bars, Strategy, run_backtest, synthetic_bars
from quantflow_async.backtest.trailing import TrailingStrategy

Decide = Callable[[Any, float, int], None]
CASH = 10_000
COMMISSION = 0.002


def synthetic_frame(count: int = 3_000, seed: int = 7) -> pd.DataFrame:
    """A random walk with gaps, prices to the cent, as a DataFrame the peer takes."""
    bars = synthetic_bars(count, seed=seed, volatility=0.02)
    columns = {
        name.capitalize(): np.round(getattr(bars, name), 2)
        for name in ("open", "high", "low", "close")
    }
    index = pd.to_datetime(bars.times, unit="us")
    return pd.DataFrame({**columns, "Volume": bars.volume}, index=index)


DATA = {"goog": GOOG, "synthetic": synthetic_frame()}


def bars_of(frame: pd.DataFrame) -> Bars:
    times = frame.index.values.astype("datetime64[us]").astype(np.int64)
    columns = (frame[name].to_numpy(dtype=np.float64) for name in ("Open", "High", "Low", "Close"))
    return Bars.from_arrays(times, *columns)


def sma(frame: pd.DataFrame, n: int) -> list[float]:
    return pd.Series(frame["Close"]).rolling(n).mean().tolist()


def crossings(frame: pd.DataFrame, fast: int = 10, slow: int = 20) -> list[int]:
    """+1 on a bar where the fast average crosses above the slow one, -1 below, else 0."""
    a, b = sma(frame, fast), sma(frame, slow)
    out = [0] * len(a)
    for i in range(1, len(a)):
        if a[i - 1] < b[i - 1] and a[i] > b[i]:
            out[i] = 1
        elif a[i - 1] > b[i - 1] and a[i] < b[i]:
            out[i] = -1
    return out


def run_both(
    decide: Decide,
    frame: pd.DataFrame,
    *,
    trailing: float | None = None,
    **options: Any,
) -> tuple[pd.Series, BacktestResult]:
    """The peer's statistics and our result for `decide` over `frame`; `options` are run
    options both take (margin, trade_on_close, hedging, exclusive_orders, ...). With
    `trailing`, both strategies trail a stop-loss that many ATRs from the close."""
    options.setdefault("exclusive_orders", False)  # the peer's default, not ours
    peer_base: type[backtesting.Strategy] = (
        PeerTrailingStrategy if trailing is not None else backtesting.Strategy
    )
    our_base: type[Strategy] = TrailingStrategy if trailing is not None else Strategy

    class Peer(peer_base):  # type: ignore[valid-type,misc]
        def init(self) -> None:
            super().init()
            if trailing is not None:
                self.set_trailing_sl(trailing)

        def next(self) -> None:
            super().next()
            decide(self, float(self.data.Close[-1]), len(self.data) - 1)

    class Ours(our_base):  # type: ignore[valid-type,misc]
        def next(self) -> None:
            super().next()
            decide(self, self.data.close[-1], self.bar_index)

    config = {"n_atr": float(trailing)} if trailing is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = backtesting.Backtest(frame, Peer, cash=CASH, commission=COMMISSION, **options).run()
    ours = run_backtest(Ours, bars_of(frame), config, cash=CASH, commission=COMMISSION, **options)
    return peer, ours


def assert_same_run(peer: pd.Series, ours: BacktestResult) -> None:
    """Equity curves equal to 1e-9 relative, and the same closed trades in the same order."""
    theirs = peer["_trades"]
    assert len(ours.trades) == len(theirs)
    assert [t.size for t in ours.trades] == theirs["Size"].tolist()
    assert [t.entry_bar for t in ours.trades] == theirs["EntryBar"].tolist()
    assert [t.exit_bar for t in ours.trades] == theirs["ExitBar"].tolist()
    assert [t.tag for t in ours.trades] == [None if pd.isna(t) else t for t in theirs["Tag"]]
    assert [t.entry_price for t in ours.trades] == pytest.approx(
        theirs["EntryPrice"].tolist(), rel=1e-12
    )
    assert [t.exit_price for t in ours.trades] == pytest.approx(
        theirs["ExitPrice"].tolist(), rel=1e-12
    )
    assert [t.pnl for t in ours.trades] == pytest.approx(theirs["PnL"].tolist(), rel=1e-9)
    np.testing.assert_allclose(ours.equity, peer["_equity_curve"]["Equity"], rtol=1e-9)
