"""Benchmark: the README's sweep, `quantflow sweep` with 2 worker processes and with 1,
against backtesting.py's `optimize` over the same grid and files, each a whole process.

    python benchmarks/sweep_run.py [--bars 30000] [--rounds 3] [--vectorbt PYTHON]

The files are the demo's (scripts/demo): six seeded random walks of --bars hourly bars,
alpha.csv to zeta.csv. The grid is the demo's, {"fast": [3, 5, 8, 13], "slow": [21, 34, 55,
89]}, on every file (96 backtests), cash 100,000, commission 0.0005, exclusive orders.
Each round runs the three, one after the other, who goes first turning round, so that all
see the same machine:
  - `quantflow sweep sma_cross --data ... --grid ... --workers 2 --top 5 --json` (the demo's
    best five) into a migrated SQLite file of its own (copied from a template before the
    clock starts): imports, reading the six CSVs, the backtests in two worker processes,
    storing every backtest, its metrics and results, and every fill;
  - the same with `--workers 1`;
  - `python benchmarks/peer_optimize.py` (backtesting.py: pandas' read_csv, then
    `Backtest(...).optimize(fast=..., slow=...)` on each file, in its own worker processes;
    it stores nothing);
  - with --vectorbt PYTHON, `PYTHON benchmarks/peer_vectorbt.py` too (vectorbt, with an
    interpreter of its own: see that file; it stores nothing, and its rules differ, so only
    its time is compared).
All run once untimed first (file cache, bytecode; for vectorbt, numba's cache on disk).
Before any figure is printed, every fill a sweep reports must be stored, and its best config
on each file, read from its database after the clock stops, must be backtesting.py's, with
the same return. A figure is the median (min..max)
of the rounds, wall and CPU (the process and its children); a ratio is the median of each
round's own ratio. The load average is recorded at the start and the end. Prints a table and
writes benchmarks/results/sweep-run.json.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import bytecode_cached, load_average, print_table, shown, spread, write_json
from backtest_run import HERE, PYTHON, QUANTFLOW, database_url, timed

from quantflow_async.backtest import synthetic_bars

MARKETS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
FAST = (3, 5, 8, 13)
SLOW = (21, 34, 55, 89)
CASH = 100_000
COMMISSION = 0.0005


def write_markets(folder: Path, count: int) -> list[Path]:
    """The demo's six markets as CSV files."""
    files = []
    for seed, market in enumerate(MARKETS, start=1):
        bars = synthetic_bars(
            count, seed=seed, interval=timedelta(hours=1), volatility=0.004, drift=0.00002
        )
        columns = (bars.open, bars.high, bars.low, bars.close, bars.volume)
        path = folder / f"{market}.csv"
        with path.open("w") as file:
            file.write("time,open,high,low,close,volume\n")
            for i in range(count):
                prices = ",".join(f"{float(column[i]):.6f}" for column in columns)
                file.write(f"{bars.time_at(i):%Y-%m-%dT%H:%M:%SZ},{prices}\n")
        files.append(path)
    return files


def markets_and_template(folder: Path, count: int) -> tuple[list[Path], Path]:
    """The demo's six markets as CSV files, and a migrated SQLite file to copy for each run."""
    template = folder / "template.sqlite3"
    subprocess.run(
        [*QUANTFLOW, "--database-url", database_url(template), "migrate"],
        check=True, capture_output=True,
    )  # fmt: skip
    return write_markets(folder, count), template


def ours(folder: Path, template: Path, files: list[Path], workers: int, n: int) -> list[str]:
    database = folder / f"run-{workers}-{n}.sqlite3"
    shutil.copyfile(template, database)
    grid = json.dumps({"fast": FAST, "slow": SLOW})
    data = [argument for path in files for argument in ("--data", str(path))]
    return [
        *QUANTFLOW, "--database-url", database_url(database), "sweep", "run", "sma_cross",
        *data, "--grid", grid, "--cash", str(CASH), "--commission", str(COMMISSION),
        "--workers", str(workers), "--top", "5", "--json",
    ]  # fmt: skip


def peer(files: list[Path], python: str = PYTHON, script: str = "peer_optimize.py") -> list[str]:
    return [
        python, str(HERE / script), *map(str, files),
        "--fast", *map(str, FAST), "--slow", *map(str, SLOW),
        "--cash", str(CASH), "--commission", str(COMMISSION),
    ]  # fmt: skip


def stored_fills(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM trades").fetchone()[0])


def best_by_market(database: Path) -> dict[str, tuple[int, int, float]]:
    """Our best config on each file (its symbol is the file name, upper case), read from the
    sweep's database once its clock has stopped: (fast, slow, return %)."""
    query = (
        "SELECT json_extract(config, '$.symbol'), json_extract(config, '$.parameters.fast'),"
        " json_extract(config, '$.parameters.slow'), json_extract(metrics, '$.return_pct')"
        " FROM backtests WHERE status = 'completed'"
    )
    best: dict[str, tuple[int, int, float]] = {}
    with sqlite3.connect(database) as connection:
        for symbol, fast, slow, return_pct in connection.execute(query):
            market, figure = symbol.lower(), (fast, slow, return_pct)
            if market not in best or figure[2] > best[market][2]:
                best[market] = figure
    return best


def check(result: dict[str, Any], peer_result: dict[str, Any], database: Path) -> None:
    fills = stored_fills(database)
    if result["fills_stored"] != fills:
        raise SystemExit(f"{result['fills_stored']} fills reported, {fills} stored")
    if result["completed"] != len(MARKETS) * len(FAST) * len(SLOW):
        raise SystemExit(f"{result['completed']} backtests completed")
    ours_best = best_by_market(database)
    for market, theirs in peer_result["best"].items():
        if market not in ours_best:
            raise SystemExit(f"{market}: not among our data sets {sorted(ours_best)}")
        fast, slow, return_pct = ours_best[market]
        same = (fast, slow) == (theirs["fast"], theirs["slow"]) and math.isclose(
            return_pct, theirs["return_pct"], rel_tol=1e-9, abs_tol=1e-9
        )
        if not same:
            raise SystemExit(f"{market}: ours {ours_best[market]}, backtesting.py {theirs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vectorbt", metavar="PYTHON", help="an interpreter with vectorbt")
    args = parser.parse_args()
    runs = ("ours-2", "ours-1", "peer", *(("vectorbt",) if args.vectorbt else ()))
    with bytecode_cached(), tempfile.TemporaryDirectory(prefix="sweep-run-") as name:
        folder = Path(name)
        files, template = markets_and_template(folder, args.bars)

        def command(who: str, n: int) -> list[str]:
            if who == "peer":
                return peer(files)
            if who == "vectorbt":
                return peer(files, args.vectorbt, "peer_vectorbt.py")
            return ours(folder, template, files, int(who[-1]), n)

        for who in runs:  # warm: file cache, bytecode
            timed(command(who, 0))
        load_at_start = load_average()
        seconds: dict[str, list[float]] = {who: [] for who in runs}
        cpu: dict[str, list[float]] = {who: [] for who in runs}
        results: dict[str, dict[str, Any]] = {}
        for n in range(1, args.rounds + 1):
            shift = (n - 1) % len(runs)  # who goes first turns round
            for who in runs[shift:] + runs[:shift]:
                elapsed, used, results[who] = timed(command(who, n))
                seconds[who].append(elapsed)
                cpu[who].append(used)
                print(f"  round {n}: {who} {elapsed:.2f} s", file=sys.stderr, flush=True)
            for workers in (2, 1):
                database = folder / f"run-{workers}-{n}.sqlite3"
                check(results[f"ours-{workers}"], results["peer"], database)
            if args.vectorbt and sorted(results["vectorbt"]["best"]) != sorted(MARKETS):
                raise SystemExit(f"vectorbt ran on {sorted(results['vectorbt']['best'])}")
        load_at_end = load_average()

    def ratio(slow: str, fast: str, of: dict[str, list[float]]) -> dict[str, Any]:
        return spread([s / f for s, f in zip(of[slow], of[fast], strict=True)])

    wall = {who: spread(values) for who, values in seconds.items()}
    used = {who: spread(values) for who, values in cpu.items()}
    ratios = {
        "peer_over_2_workers": ratio("peer", "ours-2", seconds),
        "peer_over_1_worker": ratio("peer", "ours-1", seconds),
        "1_worker_over_2": ratio("ours-1", "ours-2", seconds),
    }
    if args.vectorbt:
        ratios["vectorbt_over_2_workers"] = ratio("vectorbt", "ours-2", seconds)
    fills = results["ours-2"]["fills_stored"]
    rows = [
        ["quantflow sweep, 2 workers", shown(wall["ours-2"]), shown(used["ours-2"]),
         f"96 backtests, {fills:,} fills"],
        ["quantflow sweep, 1 worker", shown(wall["ours-1"]), shown(used["ours-1"]),
         f"96 backtests, {fills:,} fills"],
        ["backtesting.py 0.6 optimize", shown(wall["peer"]), shown(used["peer"]), "nothing"],
    ]  # fmt: skip
    if args.vectorbt:
        rows.append(["vectorbt, numba cache warm", shown(wall["vectorbt"]),
                     shown(used["vectorbt"]), "nothing"])  # fmt: skip
    rows += [
        ["backtesting.py / quantflow 2 workers, per round",
         shown(ratios["peer_over_2_workers"]) + "x", "", ""],
        ["1 worker / 2 workers, per round", shown(ratios["1_worker_over_2"]) + "x", "", ""],
    ]  # fmt: skip
    if args.vectorbt:
        rows.append(["vectorbt / quantflow 2 workers, per round",
                     shown(ratios["vectorbt_over_2_workers"]) + "x", "", ""])  # fmt: skip
    print_table(
        f"The README's sweep: 96 backtests (6 x {args.bars:,} hourly bars, a 4 x 4 grid), whole "
        f"process; median (min..max) of {args.rounds} rounds (load {load_at_start:.2f} -> "
        f"{load_at_end:.2f})",
        ["process", "wall, s", "CPU, s", "keeps"],
        rows,
    )
    write_json(
        "sweep-run",
        {
            "bars": args.bars,
            "rounds": args.rounds,
            "backtests": 96,
            "fills": fills,
            "load_average": {"start": load_at_start, "end": load_at_end},
            "wall_seconds": wall,
            "cpu_seconds": used,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
