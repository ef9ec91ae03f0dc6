"""Benchmark: the backtest engine against backtesting.py, same strategy, same bars, one run.

    python benchmarks/backtest.py [--repeats 7] [--long-bars 200000] [--quick]

Measures single-process bars/s of SmaCross(10, 20) with cash 10,000, commission 0.002 and
exclusive orders, in both engines, runs interleaved so that both see the same machine state:
  1. backtesting.py's bundled GOOG daily bars (2,148 bars), the issue's reference case;
  2. a synthetic daily random walk of --long-bars bars, where per-run overheads vanish.
Each run is a whole backtest from bars already in memory to statistics (our `run_backtest`;
the peer's `Backtest(...).run()`); reading the CSV is timed apart. Both engines' closed trades
and final equity are checked to agree before any figure is printed. Throughputs are medians
of --repeats. Prints a table and writes benchmarks/results/backtest.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import backtesting
import backtesting.test
import pandas as pd
from _common import median, print_table, write_json
from backtesting.lib import crossover

from quantflow_async.backtest import (
    Bars,
    SmaCross,
    Strategy,
    read_bars,
    run_backtest,
    synthetic_bars,
)
from quantflow_async.backtest import crossover as our_crossover

CASH = 10_000
COMMISSION = 0.002
GOOG_CSV = Path(backtesting.test.__file__).parent / "GOOG.csv"


class PeerSmaCross(backtesting.Strategy):
    """backtesting.py's SmaCross example, as its documentation writes it."""

    fast = 10
    slow = 20

    def init(self) -> None:
        self.fast_ma = self.I(backtesting.test.SMA, self.data.Close, self.fast)
        self.slow_ma = self.I(backtesting.test.SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_ma, self.slow_ma):
            self.position.close()
            self.buy()
        elif crossover(self.slow_ma, self.fast_ma):
            self.position.close()
            self.sell()


class PerBarSmaCross(SmaCross):
    """Our SmaCross with the peer's code shape: two `crossover` calls on every bar."""

    def next(self) -> None:
        if our_crossover(self.fast_ma, self.slow_ma):
            self.close()
            self.buy()
        elif our_crossover(self.slow_ma, self.fast_ma):
            self.close()
            self.sell()


def frame_of(bars: Bars) -> pd.DataFrame:
    index = pd.to_datetime(bars.times, unit="us")
    columns = {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close}
    return pd.DataFrame({**columns, "Volume": bars.volume}, index=index)


def run_peer(frame: pd.DataFrame) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "trades remain open", pandas deprecations
        backtest = backtesting.Backtest(
            frame, PeerSmaCross, cash=CASH, commission=COMMISSION, exclusive_orders=True
        )
        return backtest.run()


def run_ours(bars: Bars, strategy: type[Strategy] = SmaCross) -> Any:
    return run_backtest(strategy, bars, {"fast": 10, "slow": 20}, CASH, COMMISSION)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def compare(name: str, bars: Bars, repeats: int) -> dict[str, Any]:
    """Median seconds of both engines on `bars`, interleaved, after checking they agree.

    Ours runs twice a round: `sma_cross` as shipped (crossings found in init with numpy)
    and PerBarSmaCross (crossover tested in every `next`, as the peer's example does).
    """
    frame = frame_of(bars)
    seconds: dict[str, list[float]] = {"ours": [], "ours_per_bar": [], "peer": []}
    run_ours(bars)  # warm everything up: imports, first-call caches
    run_peer(frame)
    for _ in range(repeats):
        elapsed, ours = timed(lambda: run_ours(bars))
        seconds["ours"].append(elapsed)
        elapsed, per_bar = timed(lambda: run_ours(bars, PerBarSmaCross))
        seconds["ours_per_bar"].append(elapsed)
        elapsed, peer = timed(lambda: run_peer(frame))
        seconds["peer"].append(elapsed)
    final_diff = abs(ours.metrics["final_equity"] / peer["Equity Final [$]"] - 1)
    same_trades = ours.metrics["trades"] == per_bar.metrics["trades"] == peer["# Trades"]
    if not same_trades or final_diff > 1e-3:
        raise SystemExit(f"{name}: the engines disagree; not a fair comparison")
    rates = {key: len(bars) / median(values) for key, values in seconds.items()}
    return {
        "case": name,
        "bars": len(bars),
        "repeats": repeats,
        "seconds": {key: median(values) for key, values in seconds.items()},
        "bars_per_second": rates,
        "speedup": rates["ours"] / rates["peer"],
        "speedup_per_bar": rates["ours_per_bar"] / rates["peer"],
        "trades": ours.metrics["trades"],
        "cancelled_orders": ours.cancelled_orders,  # for want of cash, in both engines alike
        "final_equity_relative_difference": final_diff,
    }


def reading(name: str, path: Path, repeats: int) -> dict[str, Any]:
    """read_bars of a CSV file: what a run from a file waits on before the engine starts."""
    seconds = [timed(lambda: read_bars(path))[0] for _ in range(repeats)]
    bars = read_bars(path)
    return {
        "file": name,
        "bars": len(bars),
        "seconds": median(seconds),
        "bars_per_second": len(bars) / median(seconds),
    }


def main(args: argparse.Namespace) -> None:
    goog = read_bars(GOOG_CSV)
    # driftless and calm, so the price stays in range; over 200,000 bars the commissions
    # of ~10,000 crossings wear the account down until most orders cannot be paid for
    long = synthetic_bars(args.long_bars, seed=1, drift=0.0, volatility=0.005)
    cases = [
        compare("GOOG daily", goog, args.repeats),
        compare("synthetic daily", long, max(1, args.repeats // 2)),
    ]
    with tempfile.TemporaryDirectory() as folder:
        long_csv = Path(folder) / "long.csv"
        frame_of(long).to_csv(long_csv)
        loads = [
            reading("GOOG.csv", GOOG_CSV, args.repeats),
            reading("synthetic, written by pandas", long_csv, max(1, args.repeats // 2)),
        ]

    rows = []
    for case in cases:
        rates = case["bars_per_second"]
        for label, key, speedup in (
            ("sma_cross (crossings in init)", "ours", case["speedup"]),
            ("crossover() in every next", "ours_per_bar", case["speedup_per_bar"]),
        ):
            rows.append(
                (
                    case["case"],
                    f"{case['bars']:,}",
                    label,
                    f"{rates[key]:,.0f}",
                    f"{rates['peer']:,.0f}",
                    f"{speedup:.1f}x",
                    case["trades"],
                )
            )
    print_table(
        f"Backtest engine, single process, SmaCross(10, 20), cash {CASH:,}, commission "
        f"{COMMISSION}, exclusive orders; medians",
        ["bars", "count", "ours", "ours bars/s", "backtesting.py bars/s", "ours/peer", "trades"],
        rows,
    )
    print_table(
        "Reading bars from CSV (read_bars), timed apart from the engine",
        ["file", "bars", "bars/s"],
        [(load["file"], f"{load['bars']:,}", f"{load['bars_per_second']:,.0f}") for load in loads],
    )
    write_json(
        "backtest" if not args.quick else "backtest-quick",
        {
            "engine": {
                "strategy": "sma_cross",
                "config": {"fast": 10, "slow": 20},
                "cash": CASH,
                "commission": COMMISSION,
                "versions": {
                    "backtesting": version("backtesting"),
                    "numpy": version("numpy"),
                    "pandas": version("pandas"),
                },
                "cases": cases,
                "read_csv": loads,
            }
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--long-bars", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.repeats, arguments.long_bars = 2, 20_000
    main(arguments)
