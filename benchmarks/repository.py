"""Benchmark: `db.trades.insert_many` of 100,000 fills, then paging through all of them.

    python benchmarks/repository.py [--fills 100000] [--page 1000] [--repeats 3] [--postgres URL]

Prints a table and writes benchmarks/results/repository.json. Figures are medians of the repeats.
PostgreSQL rows are added when --postgres (or QUANTFLOW_TEST_POSTGRES_URL) names a server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from _common import fresh_database, median, print_table, synthetic_fills, write_json

from quantflow_async import Database


async def one_run(url: str, count: int, page_size: int) -> dict[str, float]:
    strategy_id, backtest_id = await fresh_database(url)
    fills = list(synthetic_fills(count, strategy_id, backtest_id))
    async with Database(url) as db:
        started = time.perf_counter()
        inserted = await db.trades.insert_many(fills)
        insert_seconds = time.perf_counter() - started
        assert inserted == count, (inserted, count)

        page_times: list[float] = []
        seen, after = 0, None
        started = time.perf_counter()
        while True:
            page_started = time.perf_counter()
            page = await db.trades.list(backtest_id=backtest_id, after_id=after, limit=page_size)
            page_times.append(time.perf_counter() - page_started)
            if not page:
                break
            seen += len(page)
            after = page[-1].id
        paging_seconds = time.perf_counter() - started
        assert seen == count, (seen, count)
    pages = len(page_times) - 1
    tenth = max(1, pages // 10)
    return {
        "insert_seconds": insert_seconds,
        "paging_seconds": paging_seconds,
        "first_pages_ms": 1000 * sum(page_times[:tenth]) / tenth,
        "last_pages_ms": 1000 * sum(page_times[pages - tenth : pages]) / tenth,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("QUANTFLOW_TEST_POSTGRES_URL"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        backends = {"sqlite": f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}"}
        if args.postgres:
            backends["postgresql"] = args.postgres
        results: dict[str, dict[str, float]] = {}
        for name, url in backends.items():
            runs = [await one_run(url, args.fills, args.page) for _ in range(args.repeats)]
            results[name] = {key: median([run[key] for run in runs]) for key in runs[0]}

    rows = [
        (
            name,
            f"{r['insert_seconds']:.2f} s",
            f"{args.fills / r['insert_seconds']:,.0f}",
            f"{r['paging_seconds']:.2f} s",
            f"{r['first_pages_ms']:.1f} ms",
            f"{r['last_pages_ms']:.1f} ms",
        )
        for name, r in results.items()
    ]
    print_table(
        f"insert_many of {args.fills:,} fills, then every page of {args.page} "
        f"(median of {args.repeats})",
        ["backend", "insert_many", "fills/s", "all pages", "first 10% pages", "last 10% pages"],
        rows,
    )
    write_json(
        "repository",
        {"fills": args.fills, "page": args.page, "repeats": args.repeats, "results": results},
    )


if __name__ == "__main__":
    asyncio.run(main())
