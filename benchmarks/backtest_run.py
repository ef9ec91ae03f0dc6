"""Benchmark: `quantflow backtest run` against backtesting.py, each a whole process, from a
bars CSV to the results.

    python benchmarks/backtest_run.py [--bars 200000] [--rounds 7] [--commission 0.002]

The bars are `quantflow bars synth --count BARS --interval 1m` (one-minute bars, seed 1).
Each round runs both, one after the other (who goes first alternates), so that both see the
same machine:
  - ours: `quantflow backtest run sma_cross --data BARS.csv --config '{"fast": 10, "slow": 20}'
    --json` into a migrated SQLite file of its own (copied from a template before the clock
    starts): imports, reading the CSV, the engine, storing every fill, metrics and results;
  - the peer: `python benchmarks/peer_sma_cross.py BARS.csv` (backtesting.py's SmaCross
    example: imports, pandas' read_csv, `Backtest(...).run()`).
Both run once untimed first (warm file cache and bytecode). The two must report the same trades
and final equity, and every fill ours reports must be in its database, before any figure is
printed. A figure is the median of the rounds with its range, for wall time and for CPU time
(user and system, the process and its children); a ratio is the median of each round's
peer/ours. The load average is recorded at the start and the end.
Prints a table and writes benchmarks/results/backtest-run.json.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import bytecode_cached, load_average, median, print_table, shown, spread, write_json

PYTHON = sys.executable
HERE = Path(__file__).parent
_SCRIPT = Path(PYTHON).with_name("quantflow")
QUANTFLOW = [str(_SCRIPT)] if _SCRIPT.is_file() else [PYTHON, "-m", "quantflow_async.cli"]
CONFIG = '{"fast": 10, "slow": 20}'


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's ended children and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def adopt_orphans() -> None:
    """On Linux, become the parent of the processes our commands leave behind (a sweep's
    fork server outlives `quantflow` by a moment), so that their CPU is counted too."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def timed(command: list[str]) -> tuple[float, float, dict[str, Any]]:
    """Wall and CPU seconds of a whole process (with its own children: our SQLite writer,
    a sweep's fork server and workers), and the JSON object its last line printed."""
    adopt_orphans()
    cpu_before = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    _reap_orphans()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return seconds, children_cpu() - cpu_before, json.loads(done.stdout.strip().splitlines()[-1])


def database_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def ours(folder: Path, template: Path, bars: Path, args: argparse.Namespace, n: int) -> list[str]:
    database = folder / f"run-{n}.sqlite3"
    shutil.copyfile(template, database)
    return [
        *QUANTFLOW, "--database-url", database_url(database), "backtest", "run", "sma_cross",
        "--data", str(bars), "--config", CONFIG, "--cash", str(args.cash),
        "--commission", str(args.commission), "--json",
    ]  # fmt: skip


def peer(bars: Path, args: argparse.Namespace) -> list[str]:
    return [
        PYTHON, str(HERE / "peer_sma_cross.py"), str(bars),
        "--cash", str(args.cash), "--commission", str(args.commission),
    ]  # fmt: skip


def stored_fills(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM trades").fetchone()[0])


def check_agreement(our_result: dict[str, Any], peer_result: dict[str, Any], fills: int) -> None:
    same = (
        our_result["trades"] == peer_result["trades"]
        and our_result["final_equity"] == peer_result["final_equity"]
    )
    if not same:
        raise SystemExit(f"the engines disagree: ours {our_result}, backtesting.py {peer_result}")
    if our_result["fills"] != fills:
        raise SystemExit(f"{our_result['fills']} fills reported, {fills} stored")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cash", type=float, default=10_000.0)
    parser.add_argument("--commission", type=float, default=0.002)
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds must be at least 5, for a median worth the name")

    with bytecode_cached(), tempfile.TemporaryDirectory(prefix="backtest-run-") as name:
        folder = Path(name)
        bars = folder / "bars.csv"
        template = folder / "template.sqlite3"
        subprocess.run(
            [*QUANTFLOW, "bars", "synth", "-o", str(bars), "--count", str(args.bars)],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [*QUANTFLOW, "--database-url", database_url(template), "migrate"],
            check=True, capture_output=True,
        )  # fmt: skip
        timed(ours(folder, template, bars, args, 0))  # warm: file cache, bytecode
        timed(peer(bars, args))
        load_at_start = load_average()
        seconds: dict[str, list[float]] = {"ours": [], "peer": []}
        cpu: dict[str, list[float]] = {"ours": [], "peer": []}
        for n in range(1, args.rounds + 1):
            # Who goes first alternates, so a drift in the machine's load falls on both alike.
            order = ("ours", "peer") if n % 2 else ("peer", "ours")
            results: dict[str, dict[str, Any]] = {}
            for who in order:
                command = (
                    ours(folder, template, bars, args, n) if who == "ours" else peer(bars, args)
                )
                elapsed, used, results[who] = timed(command)
                seconds[who].append(elapsed)
                cpu[who].append(used)
            fills = stored_fills(folder / f"run-{n}.sqlite3")
            check_agreement(results["ours"], results["peer"], fills)
            our_result, peer_result = results["ours"], results["peer"]
        load_at_end = load_average()

    wall = {key: spread(values) for key, values in seconds.items()}
    used = {key: spread(values) for key, values in cpu.items()}
    wall_ratio = spread([p / o for o, p in zip(seconds["ours"], seconds["peer"], strict=True)])
    cpu_ratio = spread([p / o for o, p in zip(cpu["ours"], cpu["peer"], strict=True)])
    print_table(
        f"SmaCross(10, 20) over {args.bars:,} one-minute bars, whole process, cash "
        f"{args.cash:,.0f}, commission {args.commission}; median (min..max) of {args.rounds} "
        f"rounds (load {load_at_start:.2f} -> {load_at_end:.2f})",
        ["process", "wall, s", "CPU, s", "trades", "fills stored"],
        [
            ["quantflow backtest run (stores every fill)", shown(wall["ours"]),
             shown(used["ours"]), our_result["trades"], our_result["fills"]],
            ["backtesting.py 0.6 (stores nothing)", shown(wall["peer"]), shown(used["peer"]),
             peer_result["trades"], ""],
            ["backtesting.py / quantflow, per round", shown(wall_ratio) + "x",
             shown(cpu_ratio) + "x", "", ""],
        ],
    )  # fmt: skip
    write_json(
        "backtest-run",
        {
            "bars": args.bars,
            "rounds": args.rounds,
            "cash": args.cash,
            "commission": args.commission,
            "load_average": {"start": load_at_start, "end": load_at_end},
            "trades": our_result["trades"],
            "fills": our_result["fills"],
            "final_equity": our_result["final_equity"],
            "wall_seconds": wall,
            "cpu_seconds": used,
            "peer_over_ours_wall": wall_ratio,
            "peer_over_ours_cpu": cpu_ratio,
            "ratio_of_median_walls": median(seconds["peer"]) / median(seconds["ours"]),
        },
    )


if __name__ == "__main__":
    main()
