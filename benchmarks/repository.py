"""Benchmark: reading trades back through the library against the raw driver doing the same work.

    python benchmarks/repository.py [--trades 1000000] [--page 5000] [--repeats 5]
                                    [--postgres URL] [--quick]

Each backend gets a fresh database holding --trades trades of one backtest. Then --repeats
rounds, each running, one after the other:
- summary: `db.trades.summary(backtest_id=...)` against the driver fetching symbol, side,
  quantity, price, fee and pnl and summing them exactly as Decimal in Python;
- paging: every page of `db.trades.list(backtest_id=..., after_id=..., limit=--page)` against the
  driver fetching the same keyset pages and making the same Decimal and datetime values;
- streaming: `db.trades.stream(backtest_id=...)` over every trade, against the same raw pages.
Each ratio is taken within a round (library against the raw read just before it); every figure
is the median over the rounds with its range (min..max), and the load average at the start and
end is recorded: take figures on a quiet machine. Memory of the streaming read is measured in
a fresh child process: its resident set after the first tenth of the trades, and its peak over
the whole stream.

The raw driver is `sqlite3` on SQLite and asyncpg on PostgreSQL (which makes Decimal and
datetime values itself). PostgreSQL is measured when --postgres or QUANTFLOW_TEST_POSTGRES_URL
names a server; the benchmark works in a database of its own there and drops it afterwards.
Prints a table and writes benchmarks/results/repository.json (repository-quick.json with
--quick, which only checks that the script works).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal, Inexact, localcontext
from pathlib import Path
from typing import Any

from _common import (
    fresh_database,
    load_average,
    print_table,
    shown,
    spread,
    synthetic_fills,
    write_json,
)
from sqlalchemy.engine import make_url

from quantflow_async import Database

COLUMNS = (
    "id, strategy_id, backtest_id, symbol, side, type, quantity, price, fee, executed_at,"
    " status, metadata, pnl, external_id, created_at, updated_at"
)
SUMMARY_COLUMNS = "symbol, side, quantity, price, fee, pnl"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FILL_CHUNK = 50_000
PAIRS = (
    ("summary", "summary_raw", "summary_library"),
    ("paging", "paging_raw", "paging_library"),
    ("stream", "paging_raw", "stream_library"),
)
"""Each library read and the raw read it is measured against."""


# -- the raw driver doing the same work ---------------------------------------------------


def _sqlite_page_sql(first: bool) -> str:
    after = "" if first else " AND executed_at >= ? AND (executed_at > ? OR id > ?)"
    return (
        f"SELECT {COLUMNS} FROM trades WHERE backtest_id = ?{after}"  # noqa: S608
        " ORDER BY executed_at, id LIMIT ?"
    )


def raw_sqlite_paging(path: str, backtest_id: int, page: int) -> int:
    """sqlite3 fetching every keyset page and making the Decimal, datetime and JSON values."""
    loads, number, delta = json.loads, Decimal, timedelta
    connection = sqlite3.connect(path)
    try:
        seen, rows = 0, connection.execute(_sqlite_page_sql(True), (backtest_id, page)).fetchall()
        while rows:
            values = [
                (
                    i, s, b, sym, side, kind, number(q), number(p),
                    None if f is None else number(f), EPOCH + delta(0, 0, at), status,
                    None if m is None else loads(m), None if pnl is None else number(pnl), ext,
                    EPOCH + delta(0, 0, created), EPOCH + delta(0, 0, updated),
                )
                for (
                    i, s, b, sym, side, kind, q, p, f, at, status, m, pnl, ext, created, updated,
                ) in rows
            ]  # fmt: skip
            seen += len(values)
            last_at, last_id = rows[-1][9], rows[-1][0]
            rows = connection.execute(
                _sqlite_page_sql(False), (backtest_id, last_at, last_at, last_id, page)
            ).fetchall()
        return seen
    finally:
        connection.close()


def sum_rows(rows: Iterator[Any] | list[Any]) -> dict[str, list[Any]]:
    """Per-symbol count, bought, sold, notional, fees and pnl, exact in Decimal."""
    totals: dict[str, list[Any]] = {}
    number = Decimal
    with localcontext() as context:
        context.prec = 120
        context.traps[Inexact] = True
        for symbol, side, quantity, price, fee, pnl in rows:
            entry = totals.get(symbol)
            if entry is None:
                entry = totals[symbol] = [0, *(Decimal(0) for _ in range(5))]
            amount = number(quantity)
            entry[0] += 1
            entry[1 if side == "buy" else 2] += amount
            entry[3] += amount * number(price)
            if fee is not None:
                entry[4] += number(fee)
            if pnl is not None:
                entry[5] += number(pnl)
    return totals


def raw_sqlite_summary(path: str, backtest_id: int) -> int:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM trades WHERE backtest_id = ?",  # noqa: S608
            (backtest_id,),
        )
        return sum(entry[0] for entry in sum_rows(rows).values())
    finally:
        connection.close()


async def raw_postgres_paging(dsn: str, backtest_id: int, page: int) -> int:
    """asyncpg fetching every keyset page; its codecs make the Decimal and datetime values."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        first = (
            f"SELECT {COLUMNS} FROM trades WHERE backtest_id = $1"  # noqa: S608
            " ORDER BY executed_at, id LIMIT $2"
        )
        after = (
            f"SELECT {COLUMNS} FROM trades WHERE backtest_id = $1"  # noqa: S608
            " AND executed_at >= $2 AND (executed_at > $2 OR id > $3)"
            " ORDER BY executed_at, id LIMIT $4"
        )
        seen, rows = 0, await connection.fetch(first, backtest_id, page)
        while rows:
            values = [tuple(row) for row in rows]
            seen += len(values)
            rows = await connection.fetch(after, backtest_id, rows[-1][9], rows[-1][0], page)
        return seen
    finally:
        await connection.close()


async def raw_postgres_summary(dsn: str, backtest_id: int) -> int:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        sql = f"SELECT {SUMMARY_COLUMNS} FROM trades WHERE backtest_id = $1"  # noqa: S608
        totals: dict[str, list[Any]] = {}
        async with connection.transaction():
            cursor = await connection.cursor(sql, backtest_id)
            while rows := await cursor.fetch(5000):
                for symbol, entry in sum_rows(rows).items():
                    if symbol not in totals:
                        totals[symbol] = entry
                    else:
                        totals[symbol] = [a + b for a, b in zip(totals[symbol], entry, strict=True)]
        return sum(entry[0] for entry in totals.values())
    finally:
        await connection.close()


# -- the library ------------------------------------------------------------------------


async def library_paging(db: Database, backtest_id: int, page: int) -> int:
    seen, after = 0, None
    while trades := await db.trades.list(backtest_id=backtest_id, after_id=after, limit=page):
        seen += len(trades)
        after = trades[-1].id
    return seen


async def library_stream(db: Database, backtest_id: int, page: int) -> int:
    seen = 0
    async for _trade in db.trades.stream(backtest_id=backtest_id, chunk_size=page):
        seen += 1
    return seen


async def library_summary(db: Database, backtest_id: int) -> int:
    return sum(s.trade_count for s in await db.trades.summary(backtest_id=backtest_id))


# -- measuring ----------------------------------------------------------------------------


async def timed(work: Callable[[], Awaitable[int]], expected: int) -> float:
    started = time.perf_counter()
    count = await work()
    seconds = time.perf_counter() - started
    assert count == expected, (count, expected)
    return seconds


async def fill(url: str, count: int) -> int:
    strategy_id, backtest_id = await fresh_database(url)
    async with Database(url) as db:
        fills = synthetic_fills(count, strategy_id, backtest_id)
        stored = 0
        while chunk := [fill for _, fill in zip(range(FILL_CHUNK), fills, strict=False)]:
            stored += await db.trades.insert_many(chunk)
            print(f"\r  {url.split(':')[0]}: {stored:,} of {count:,} trades stored", end="")
        print()
    return backtest_id


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    backtest_id = await fill(url, args.trades)
    sqlite = url.startswith("sqlite")
    path = make_url(url).database or ""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def raw_paging() -> int:
        if sqlite:
            return raw_sqlite_paging(path, backtest_id, args.page)
        return await raw_postgres_paging(dsn, backtest_id, args.page)

    async def raw_summary() -> int:
        if sqlite:
            return raw_sqlite_summary(path, backtest_id)
        return await raw_postgres_summary(dsn, backtest_id)

    runs: dict[str, list[float]] = {}
    load_at_start = load_average()
    async with Database(url) as db:
        work: dict[str, Callable[[], Awaitable[int]]] = {
            "summary_raw": raw_summary,
            "summary_library": lambda: library_summary(db, backtest_id),
            "paging_raw": raw_paging,
            "paging_library": lambda: library_paging(db, backtest_id, args.page),
            "stream_library": lambda: library_stream(db, backtest_id, args.page),
        }
        for repeat in range(args.repeats):
            for name, read in work.items():
                runs.setdefault(name, []).append(await timed(read, args.trades))
            print(f"  run {repeat + 1} of {args.repeats} done")
    result: dict[str, Any] = {name: spread(times) for name, times in runs.items()}
    result["load_average"] = {"start": load_at_start, "end": load_average()}
    result["library_vs_raw_paired"] = {
        read: spread([lib / raw for raw, lib in zip(runs[raw_name], runs[lib_name], strict=True)])
        for read, raw_name, lib_name in PAIRS
    }
    result["memory"] = stream_memory(url, backtest_id, args.page, args.trades)
    return result


def stream_memory(url: str, backtest_id: int, chunk: int, trades: int) -> dict[str, float]:
    """Resident memory of a fresh process streaming every trade (see child_stream)."""
    command = [sys.executable, __file__, "--child-stream", url, str(backtest_id), str(chunk)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout  # noqa: S603
    memory: dict[str, float] = json.loads(output.splitlines()[-1])
    assert memory["trades"] == trades, (memory, trades)
    return memory


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


async def child_stream(url: str, backtest_id: int, chunk: int) -> None:
    """Stream every trade; print RSS at the start, after the first tenth, and the peak."""
    async with Database(url) as db:
        total = await db.trades.count(backtest_id=backtest_id)
        start = _rss_mb("VmRSS")
        tenth, seen, after_tenth = max(1, total // 10), 0, 0.0
        async for _trade in db.trades.stream(backtest_id=backtest_id, chunk_size=chunk):
            seen += 1
            if seen == tenth:
                after_tenth = _rss_mb("VmRSS")
        end = _rss_mb("VmRSS")
    memory = {"trades": seen, "start_mb": start, "after_tenth_mb": after_tenth}
    memory |= {"end_mb": end, "peak_mb": _rss_mb("VmHWM")}
    print(json.dumps(memory))


@contextmanager
def own_postgres_database(server_url: str) -> Iterator[str]:
    """A database of this run's own on the server, dropped afterwards."""
    import asyncpg

    name = f"quantflow_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dsn = server_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def run(statement: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    names = {
        "summary": "summary",
        "paging": f"every page of {args.page:,}",
        "stream": f"stream, chunks of {args.page:,}",
    }
    targets = {"summary": "<= 1.2", "paging": "<= 1.3", "stream": "<= 1.3"}
    rows = []
    for backend, r in results.items():
        for read, raw, library in PAIRS:
            rows.append(
                (
                    backend,
                    names[read],
                    f"{shown(r[raw])} s",
                    f"{shown(r[library])} s",
                    f"{args.trades / r[library]['median']:,.0f}",
                    shown(r["library_vs_raw_paired"][read]),
                    targets[read] if backend == "sqlite" else "",
                )
            )
    loads = ", ".join(
        f"{backend} {r['load_average']['start']:.2f}..{r['load_average']['end']:.2f}"
        for backend, r in results.items()
    )
    print_table(
        f"Reading {args.trades:,} trades of one backtest: median (min..max) of {args.repeats} "
        f"paired rounds; load average {loads}",
        ["backend", "read", "raw driver", "library", "trades/s", "library / raw", "target"],
        rows,
    )
    print_table(
        f"Streaming all {args.trades:,} trades in a fresh process: resident memory",
        ["backend", "at start", "after 10%", "at the end", "peak"],
        [
            (
                backend,
                *(f"{r['memory'][key]:.0f} MB" for key in ("start_mb", "after_tenth_mb")),
                *(f"{r['memory'][key]:.0f} MB" for key in ("end_mb", "peak_mb")),
            )
            for backend, r in results.items()
        ],
    )


async def benchmark(args: argparse.Namespace, backends: dict[str, str]) -> None:
    results = {}
    for name, url in backends.items():
        print(f"{name}:")
        results[name] = await measure(url, args)
    report(args, results)
    write_json(
        "repository-quick" if args.quick else "repository",
        {"trades": args.trades, "page": args.page, "repeats": args.repeats, "results": results},
    )


def main() -> None:
    if sys.argv[1:2] == ["--child-stream"]:
        url, backtest_id, chunk = sys.argv[2:5]
        asyncio.run(child_stream(url, int(backtest_id), int(chunk)))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("QUANTFLOW_TEST_POSTGRES_URL"))
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    args = parser.parse_args()
    if args.quick:
        args.trades, args.page = 20_000, 1000
    with tempfile.TemporaryDirectory() as folder:
        backends = {"sqlite": f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}"}
        if not args.postgres:
            asyncio.run(benchmark(args, backends))
            return
        with own_postgres_database(args.postgres) as postgres_url:
            asyncio.run(benchmark(args, {**backends, "postgresql": postgres_url}))


if __name__ == "__main__":
    main()
