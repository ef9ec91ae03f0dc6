"""Benchmark: the backtest engine against backtesting.py, and sweeps stored through the writer.

    python benchmarks/backtest.py [--part engine|sweep|all] [--repeats 7] [--long-bars 200000]
                                  [--workload all] [--sweep-scale 1.0] [--sweep-rounds 2]
                                  [--quick]

Measures single-process bars/s of SmaCross(10, 20) with cash 10,000, commission 0.002 and
exclusive orders, in both engines, runs interleaved so that both see the same machine state:
  1. backtesting.py's bundled GOOG daily bars (2,148 bars), the issue's reference case;
  2. a synthetic daily random walk of --long-bars bars, where per-run overheads vanish;
  3. that walk again with sl/tp brackets and an ATR trailing stop (backtest_orders.py).
Each run is a whole backtest from bars already in memory to statistics (our `run_backtest`;
the peer's `Backtest(...).run()`); reading the CSV is timed apart. Both engines' closed trades
and final equity are checked to agree before any figure is printed. Throughputs are medians
of --repeats.

The sweep part runs `run_sweep` of SmaCross into a fresh SQLite file with the default
settings (WAL, synchronous=NORMAL) for three workloads of at least 50 backtests and 200,000
fills each, from a fill every 5 bars ("dense": 25 configs on 2 data sets of 30,000 bars) to
one every 150 or so ("sparse"), with 1 and then 2 worker processes, alternating,
--sweep-rounds times each. For each: end-to-end fills/s (from the call to its return, worker
start-up and every status change included), the speed-up of 2 workers over 1, the share of
the wall time the workers waited for the writer, and the cores kept busy (CPU seconds of
this process and of its children, workers and SQLite writer, over the wall time), which
shows where the machine's two cores went. --sweep-scale scales every workload's bars.

Prints tables and writes benchmarks/results/backtest.json (each part updates its own key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import backtest_orders
import backtesting
import backtesting.test
import pandas as pd
from _common import RESULTS, median, print_table, write_json
from backtesting.lib import crossover

from quantflow_async import Database
from quantflow_async.backtest import (
    Bars,
    SmaCross,
    Strategy,
    read_bars,
    run_backtest,
    run_sweep,
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


def engine(args: argparse.Namespace) -> dict[str, Any]:
    goog = read_bars(GOOG_CSV)
    # driftless and calm, so the price stays in range; over 200,000 bars the commissions
    # of ~10,000 crossings wear the account down until most orders cannot be paid for
    long = synthetic_bars(args.long_bars, seed=1, drift=0.0, volatility=0.005)
    cases = [
        compare("GOOG daily", goog, args.repeats),
        compare("synthetic daily", long, max(1, args.repeats // 2)),
    ]
    orders = backtest_orders.measure(args.long_bars, max(1, args.repeats // 2))
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
    backtest_orders.report(orders)
    print_table(
        "Reading bars from CSV (read_bars), timed apart from the engine",
        ["file", "bars", "bars/s"],
        [(load["file"], f"{load['bars']:,}", f"{load['bars_per_second']:,.0f}") for load in loads],
    )
    return {
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
        "brackets_and_trailing_stop": orders,
        "read_csv": loads,
    }


@dataclass(frozen=True)
class SweepWorkload:
    """A sweep of SmaCross over `grid` on `data_sets` synthetic series of `bars` bars."""

    name: str
    grid: dict[str, list[int]]
    data_sets: int
    bars: int


# From a fill every few bars to one every couple of hundred: the share of a sweep's CPU that
# goes to storing fills, rather than to the strategies, decides what a second worker gains.
SWEEP_WORKLOADS = (
    SweepWorkload("dense", {"fast": [2, 3, 4, 5, 6], "slow": [8, 10, 12, 15, 20]}, 2, 30_000),
    SweepWorkload(
        "medium", {"fast": [10, 15, 20, 25, 30], "slow": [100, 150, 200, 250, 300]}, 2, 400_000
    ),
    SweepWorkload(
        "sparse", {"fast": [20, 30, 40, 50, 60], "slow": [400, 600, 800, 1000, 1200]}, 3, 600_000
    ),
)
SWEEP_COMMISSION = 0.0005


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its ended and waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


async def one_sweep(
    folder: Path, workload: SweepWorkload, data: dict[str, Bars], workers: int
) -> dict[str, Any]:
    """One sweep into a fresh SQLite file; the clock runs from the call to its return."""
    url = f"sqlite+aiosqlite:///{folder / f'sweep-{workers}-{time.monotonic_ns()}.sqlite3'}"
    async with Database(url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="bench sweep")
        own_before, children_before = cpu_seconds()
        started = time.perf_counter()
        result = await run_sweep(
            db, "sma_cross", workload.grid, data, strategy_id=strategy.id, workers=workers,
            commission=SWEEP_COMMISSION,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        own_after, children_after = cpu_seconds()  # the workers and the SQLite worker ended
        stored = await db.trades.count()
    if result.failed or stored != result.fills_stored:
        raise SystemExit(f"sweep with {workers} workers: {result}")
    cpu_main, cpu_children = own_after - own_before, children_after - children_before
    return {
        "workers": workers,
        "backtests": len(result.backtest_ids),
        "fills": stored,
        "seconds": seconds,
        "fills_per_second": stored / seconds,
        "blocked_share": result.blocked_share,
        "writer_batches": result.writer.batches,
        "commit_p50_ms": (result.writer.commit_p50 or 0) * 1000,
        "cpu_main_seconds": cpu_main,
        "cpu_children_seconds": cpu_children,
        "cores_busy": (cpu_main + cpu_children) / seconds,
    }


def sweep_workload(
    workload: SweepWorkload, rounds: int, scale: float, folder: Path
) -> dict[str, Any]:
    bars = max(1_000, int(workload.bars * scale))
    data = {
        f"S{i}": synthetic_bars(bars, seed=i, drift=0.0, volatility=0.005)
        for i in range(workload.data_sets)
    }
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(rounds):
        for workers in (1, 2):  # alternating, so both see the same machine state
            runs[workers].append(asyncio.run(one_sweep(folder, workload, data, workers)))
    medians = {
        workers: {
            key: median([run[key] for run in found]) if key != "workers" else workers
            for key in found[0]
        }
        for workers, found in runs.items()
    }
    fills = medians[1]["fills"]
    return {
        "workload": workload.name,
        "grid": workload.grid,
        "data_sets": workload.data_sets,
        "bars_per_data_set": bars,
        "bars_per_fill": bars * medians[1]["backtests"] / fills,  # bars run per fill made
        "runs": {str(workers): found for workers, found in runs.items()},
        "medians": {str(workers): m for workers, m in medians.items()},
        "speedup_2_over_1": medians[1]["seconds"] / medians[2]["seconds"],
    }


def sweeps(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        measured = [
            sweep_workload(workload, args.sweep_rounds, args.sweep_scale, Path(folder))
            for workload in SWEEP_WORKLOADS
            if args.workload in ("all", workload.name)
        ]
    rows = []
    for found in measured:
        for workers in ("1", "2"):
            m = found["medians"][workers]
            rows.append(
                (
                    found["workload"],
                    f"{found['bars_per_fill']:.0f}",
                    workers,
                    f"{m['backtests']:.0f}",
                    f"{m['fills']:,.0f}",
                    f"{m['seconds']:.2f} s",
                    f"{m['fills_per_second']:,.0f}",
                    f"{m['blocked_share'] * 100:.1f}%",
                    f"{m['cores_busy']:.2f}",
                    f"{found['speedup_2_over_1']:.2f}x" if workers == "2" else "",
                )
            )
    print_table(
        f"Sweeps of SmaCross into SQLite (WAL, synchronous=NORMAL), {os.cpu_count()} cores, "
        f"medians of {args.sweep_rounds}",
        ["workload", "bars/fill", "workers", "backtests", "fills", "wall", "fills/s",
         "workers held back", "cores busy", "2 over 1"],
        rows,
    )  # fmt: skip
    return {
        "commission": SWEEP_COMMISSION,
        "rounds": args.sweep_rounds,
        "cores": os.cpu_count(),
        "workloads": measured,
    }


def main(args: argparse.Namespace) -> None:
    name = "backtest" if not args.quick else "backtest-quick"
    path = RESULTS / f"{name}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    payload = {key: value for key, value in previous.items() if key in ("engine", "sweep")}
    if args.part in ("engine", "all"):
        payload["engine"] = engine(args)
    if args.part in ("sweep", "all"):
        payload["sweep"] = sweeps(args)
    write_json(name, payload)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--long-bars", type=int, default=200_000)
    parser.add_argument("--part", choices=("engine", "sweep", "all"), default="all")
    parser.add_argument(
        "--workload", choices=("all", *(w.name for w in SWEEP_WORKLOADS)), default="all"
    )
    parser.add_argument(
        "--sweep-scale", type=float, default=1.0, help="bars of each sweep workload, scaled"
    )
    parser.add_argument("--sweep-rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.repeats, arguments.long_bars = 2, 20_000
        arguments.sweep_scale, arguments.sweep_rounds = 0.1, 1
    main(arguments)
