"""Benchmark: both engines with brackets and a trailing stop active on every bar.

    python benchmarks/backtest_orders.py [--repeats 5] [--bars 200000]

SmaCross(10, 20) entries, each with a stop-loss 5% and a take-profit 10% away, on a strategy
trailing every open trade's stop-loss 3 ATRs (100 bars) behind the close: ours subclasses
`backtest.trailing.TrailingStrategy`, the peer's `backtesting.lib.TrailingStrategy`. Ours
runs twice a round: with the crossings found once in `init` (as the shipped `sma_cross`),
and with `crossover` tested in every `next`, as the peer's example does. Runs interleave, so
both engines see the same machine; throughputs are medians. The runs' trades and final
equity are checked to agree first. Also run by `benchmarks/backtest.py --part engine`.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import backtesting
import backtesting.test
import pandas as pd
from _common import median, print_table, write_json
from backtesting.lib import TrailingStrategy as PeerTrailing
from backtesting.lib import crossover

from quantflow_async.backtest import (
    Bars,
    Strategy,
    TrailingStrategy,
    run_backtest,
    sma,
    synthetic_bars,
)
from quantflow_async.backtest import crossover as our_crossover
from quantflow_async.backtest.strategies import crossings

CASH = 10_000
COMMISSION = 0.002


class PeerBracketTrailing(PeerTrailing):
    def init(self) -> None:
        super().init()
        self.set_trailing_sl(3)
        self.fast = self.I(backtesting.test.SMA, self.data.Close, 10)
        self.slow = self.I(backtesting.test.SMA, self.data.Close, 20)

    def next(self) -> None:
        super().next()
        close = self.data.Close[-1]
        if not self.position:
            if crossover(self.fast, self.slow):
                self.buy(sl=close * 0.95, tp=close * 1.10)
            elif crossover(self.slow, self.fast):
                self.sell(sl=close * 1.05, tp=close * 0.90)


class BracketTrailing(TrailingStrategy):
    n_atr: float = 3.0

    def init(self) -> None:
        super().init()
        self.fast = self.I(sma, self.data.close, 10)
        self.slow = self.I(sma, self.data.close, 20)

    def next(self) -> None:
        super().next()
        close = self.data.close[-1]
        if not self.position:
            if our_crossover(self.fast, self.slow):
                self.buy(sl=close * 0.95, tp=close * 1.10)
            elif our_crossover(self.slow, self.fast):
                self.sell(sl=close * 1.05, tp=close * 0.90)


class BracketTrailingInInit(TrailingStrategy):
    n_atr: float = 3.0

    def init(self) -> None:
        super().init()
        fast = self.I(sma, self.data.close, 10)
        slow = self.I(sma, self.data.close, 20)
        self.cross = self.I(crossings, fast, slow)

    def next(self) -> None:
        super().next()
        cross = self.cross[-1]
        if cross and not self.position:
            close = self.data.close[-1]
            if cross > 0:
                self.buy(sl=close * 0.95, tp=close * 1.10)
            else:
                self.sell(sl=close * 1.05, tp=close * 0.90)


def frame_of(bars: Bars) -> pd.DataFrame:
    index = pd.to_datetime(bars.times, unit="us")
    columns = {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close}
    return pd.DataFrame({**columns, "Volume": bars.volume}, index=index)


def run_peer(frame: pd.DataFrame) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return backtesting.Backtest(
            frame, PeerBracketTrailing, cash=CASH, commission=COMMISSION
        ).run()


def run_ours(bars: Bars, strategy: type[Strategy] = BracketTrailingInInit) -> Any:
    return run_backtest(strategy, bars, cash=CASH, commission=COMMISSION, exclusive_orders=False)


def measure(bars_count: int, repeats: int) -> dict[str, Any]:
    bars = synthetic_bars(bars_count, seed=1, drift=0.0, volatility=0.005)
    frame = frame_of(bars)
    seconds: dict[str, list[float]] = {"ours": [], "ours_per_bar": [], "peer": []}
    for _ in range(repeats):
        started = time.perf_counter()
        ours = run_ours(bars)
        seconds["ours"].append(time.perf_counter() - started)
        started = time.perf_counter()
        per_bar = run_ours(bars, BracketTrailing)
        seconds["ours_per_bar"].append(time.perf_counter() - started)
        started = time.perf_counter()
        peer = run_peer(frame)
        seconds["peer"].append(time.perf_counter() - started)
    final_diff = abs(ours.metrics["final_equity"] / peer["Equity Final [$]"] - 1)
    same_trades = len(ours.trades) == len(per_bar.trades) == peer["# Trades"]
    if not same_trades or final_diff > 1e-9:
        raise SystemExit("the engines disagree; not a fair comparison")
    rates = {key: bars_count / median(values) for key, values in seconds.items()}
    return {
        "case": "sma_cross entries, sl/tp brackets, ATR trailing stop",
        "bars": bars_count,
        "repeats": repeats,
        "seconds": {key: median(values) for key, values in seconds.items()},
        "bars_per_second": rates,
        "speedup": rates["ours"] / rates["peer"],
        "speedup_per_bar": rates["ours_per_bar"] / rates["peer"],
        "trades": len(ours.trades),
        "final_equity_relative_difference": final_diff,
    }


def report(case: dict[str, Any]) -> None:
    rates = case["bars_per_second"]
    print_table(
        "Brackets and a trailing stop on every bar, single process; medians",
        ["bars", "ours", "ours bars/s", "backtesting.py bars/s", "ours/peer", "trades"],
        [
            (
                f"{case['bars']:,}",
                label,
                f"{rates[key]:,.0f}",
                f"{rates['peer']:,.0f}",
                f"{rates[key] / rates['peer']:.1f}x",
                case["trades"],
            )
            for label, key in (
                ("crossings in init", "ours"),
                ("crossover() in every next", "ours_per_bar"),
            )
        ],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bars", type=int, default=200_000)
    arguments = parser.parse_args()
    result = measure(arguments.bars, arguments.repeats)
    report(result)
    write_json("backtest-orders", result)
