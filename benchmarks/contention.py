"""Benchmark: the writer's throughput alone, and with 8 reader tasks and a second process.

    python benchmarks/contention.py [--seconds 20]

The readers page through the trades without pause; the second process runs
`quantflow count-trades` on the same SQLite file in a loop. Target: the writer keeps at least
half its solo throughput. Prints a table and writes benchmarks/results/contention.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import fresh_database, print_table, synthetic_fills, write_json
from sqlalchemy.engine import make_url

from quantflow_async import Database, Fill, TradeWriter

READERS = 8


async def run(
    url: str, seconds: float, readers: int, cli: bool, wal_sizes: list[int] | None = None
) -> dict[str, float]:
    """The writer ingesting without pause beside `readers` paging tasks (and a second process
    when `cli`) for `seconds`; samples the WAL's size into `wal_sizes` if given."""
    strategy_id, backtest_id = await fresh_database(url)
    # Fills are made before the clock starts, as sweep workers in other processes would make
    # them; without external ids the pool can be submitted again and again.
    pool = [
        Fill(**{**_arguments(fill), "external_id": None})
        for fill in synthetic_fills(100_000, strategy_id, backtest_id)
    ]
    reads = {"pages": 0, "cli": 0}
    async with Database(url) as db:
        deadline = time.monotonic() + seconds

        async def produce(writer: TradeWriter) -> None:
            while time.monotonic() < deadline:
                for start in range(0, len(pool), 1000):
                    await writer.submit_many(pool[start : start + 1000])
                    await asyncio.sleep(0)
                    if time.monotonic() >= deadline:
                        return

        async def read() -> None:
            after = None
            while time.monotonic() < deadline:
                page = await db.trades.list(backtest_id=backtest_id, after_id=after, limit=500)
                after = page[-1].id if page else None
                reads["pages"] += 1

        async def other_process() -> None:
            command = [sys.executable, "-m", "quantflow_async.cli", "--database-url", url]
            while time.monotonic() < deadline:
                child = await asyncio.create_subprocess_exec(
                    *command, "count-trades", stdout=asyncio.subprocess.DEVNULL
                )
                assert await child.wait() == 0
                reads["cli"] += 1

        async def watch_the_wal() -> None:
            assert wal_sizes is not None
            wal = str(make_url(url).database) + "-wal"
            while time.monotonic() < deadline:
                wal_sizes.append(_size(wal))
                await asyncio.sleep(0.25)

        started = time.perf_counter()
        async with db.writer(batch_size=5000) as writer:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce(writer))
                if wal_sizes is not None:
                    group.create_task(watch_the_wal())
                if cli:
                    group.create_task(other_process())
                for _ in range(readers):
                    group.create_task(read())
        elapsed = time.perf_counter() - started
    return {"fills_per_second": writer.stats().written / elapsed, **reads}


def _arguments(fill: Fill) -> dict[str, object]:
    names = ("strategy_id", "backtest_id", "symbol", "side", "type", "quantity", "price")
    more = ("fee", "executed_at", "status", "metadata", "pnl", "external_id")
    return {name: getattr(fill, name) for name in names + more}


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--readers", type=int, default=READERS)
    parser.add_argument("--no-cli", action="store_true", help="leave out the second process")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="quantflow-contention-"))
    url = f"sqlite+aiosqlite:///{folder / 'contention.sqlite3'}"
    runs = []
    for _ in range(args.repeats):
        solo = await run(url, args.seconds, readers=0, cli=False)
        loaded = await run(url, args.seconds, readers=args.readers, cli=not args.no_cli)
        runs.append((solo, loaded, loaded["fills_per_second"] / solo["fills_per_second"]))
        print(
            f"  solo {solo['fills_per_second']:,.0f}/s, loaded {loaded['fills_per_second']:,.0f}/s"
        )
    solo_rate = statistics.median(r[0]["fills_per_second"] for r in runs)
    loaded_rate = statistics.median(r[1]["fills_per_second"] for r in runs)
    ratio = statistics.median(r[2] for r in runs)
    pages = statistics.median(r[1]["pages"] for r in runs)
    cli_reads = statistics.median(r[1]["cli"] for r in runs)
    print_table(
        f"Writer throughput on SQLite, {args.seconds:.0f} s a run, median of {args.repeats} pairs",
        ["run", "fills/s", "reader pages", "CLI reads", "vs solo"],
        [
            ("writer alone", f"{solo_rate:,.0f}", "", "", "1.00"),
            (f"with {args.readers} readers + a CLI process", f"{loaded_rate:,.0f}",
             f"{pages:,.0f}", f"{cli_reads:,.0f}", f"{ratio:.2f} (target >= 0.50)"),
        ],
    )  # fmt: skip
    write_json(
        "contention",
        {"seconds": args.seconds, "readers": args.readers, "ratio_median": ratio,
         "runs": [{"solo": s, "contended": c, "ratio": r} for s, c, r in runs]},
    )  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
