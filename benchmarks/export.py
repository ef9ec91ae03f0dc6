"""Benchmark: `quantflow trades export` of a million trades, at flat memory.

    python benchmarks/export.py [--fills 1000000] [--small 100000]

Fills a SQLite database with `--fills` trades, then runs the command as a user does (a fresh
process each time) to CSV and to Parquet, exporting `--small` trades (one backtest) and all of
them. The peak RSS of each process comes from the kernel (wait4); flat memory means the two
sizes peak alike. Prints a table and writes benchmarks/results/export.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from _common import T0, fresh_database, print_table, synthetic_fills, write_json

from quantflow_async import Database

CHUNK = 50_000


async def fill_database(url: str, total: int, small: int) -> int:
    """`small` trades in one backtest and the rest in another; return the small one's id."""
    strategy_id, big_id = await fresh_database(url)
    async with Database(url) as db:
        backtest = await db.backtests.create(
            strategy_id=strategy_id, name="small", start_date=T0,
            end_date=T0 + timedelta(days=1), initial_capital=1,
        )  # fmt: skip
        for start in range(0, total, CHUNK):
            end = min(total, start + CHUNK)
            for owner, first, last in ((backtest.id, start, min(end, small)),
                                       (big_id, max(start, small), end)):  # fmt: skip
                if first < last:
                    fills = synthetic_fills(last - first, strategy_id, owner, first)
                    await db.trades.insert_many(list(fills))
            print(f"  {end:>9,} of {total:,} trades stored", flush=True)
    return backtest.id


def run_export(url: str, output: Path, *filters: str) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, what it printed) of one `quantflow trades export`."""
    argv = [sys.executable, "-m", "quantflow_async.cli", "trades", "export", *filters]
    argv += ["-o", str(output), "--database-url", url]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"export failed: {err.strip()}")
    return seconds, usage.ru_maxrss / 1024, out.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="quantflow-export-"))
    url = f"sqlite+aiosqlite:///{folder / 'trades.sqlite3'}"
    print(f"storing {args.fills:,} trades in {folder}")
    small_id = asyncio.run(fill_database(url, args.fills, args.small))

    rows = []
    results = []
    for fmt in ("csv", "parquet"):
        for label, count, filters in (
            ("one backtest", args.small, ["--backtest", str(small_id)]),
            ("every trade", args.fills, []),
        ):
            output = folder / f"export-{count}.{fmt}"
            seconds, peak_mb, said = run_export(url, output, *filters)
            size_mb = output.stat().st_size / 1e6
            print(f"  {said}")
            results.append(
                {"format": fmt, "trades": count, "seconds": round(seconds, 2),
                 "trades_per_second": round(count / seconds), "peak_rss_mb": round(peak_mb, 1),
                 "file_mb": round(size_mb, 1)}
            )  # fmt: skip
            rows.append(
                (fmt, label, f"{count:,}", f"{seconds:.1f} s", f"{count / seconds:,.0f}",
                 f"{peak_mb:.0f} MB", f"{size_mb:.0f} MB")
            )  # fmt: skip
            output.unlink()

    print_table(
        "quantflow trades export on SQLite, a fresh process each (peak RSS from wait4)",
        ["format", "what", "trades", "time", "trades/s", "peak RSS", "file"],
        rows,
    )
    write_json("export", {"fills": args.fills, "small": args.small, "results": results})
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
