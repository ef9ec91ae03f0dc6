"""Benchmark: the TradeWriter on PostgreSQL against raw asyncpg COPY, and many writers at once.

    python benchmarks/postgres.py [--url URL] [--fills 300000] [--repeats 5] [--quick]

On one PostgreSQL database (made if missing; its tables are dropped and migrated again):
  1. raw asyncpg `copy_records_to_table` of the same rows into trades, batches of 5,000, one
     transaction each (the limit to measure against);
  2. the TradeWriter, submit_many() to committed, batches of 5,000 (COPY straight into trades
     in a savepoint, the batch token; a temporary table and ON CONFLICT only for a batch that
     holds a duplicate);
  2b. the same with a naive producer (`for fill in fills: await writer.submit(fill)`), with the
     event loop's lag (how late a 1 ms sleeper wakes) measured throughout;
  3. the single-statement path (`INSERT ... SELECT FROM unnest(...)`) the writer used before;
  4. --processes processes at once, each ingesting --per-process fills through a writer of its
     own into the same database, a tenth of each one's fills re-delivered by another.
Runs 1-3 alternate in each of --repeats rounds; a ratio is taken within a round, and every figure
is the median over the rounds with its range (min..max); the load average at the start and end
is recorded. Prints tables and writes benchmarks/results/postgres.json.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime

import asyncpg
from _common import (
    fresh_database,
    load_average,
    percentile,
    print_table,
    shown,
    spread,
    synthetic_fills,
    write_json,
)
from sqlalchemy.engine import make_url

from quantflow_async import Database, Fill
from quantflow_async.records import TRADE_INSERT_COLUMNS, postgres_columns
from quantflow_async.store.trade_insert import PG_INSERT

BATCH = 5000
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/quantflow_bench"


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def ensure_database(url: str) -> None:
    target = make_url(url)
    server = await asyncpg.connect(dsn(target.set(database="postgres").render_as_string(False)))
    try:
        exists = await server.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        )
        if not exists:
            await server.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await server.close()


async def raw_copy(url: str, fills: list[Fill]) -> float:
    records = [
        list(zip(*postgres_columns(fills[i : i + BATCH]), strict=True))
        for i in range(0, len(fills), BATCH)
    ]
    connection = await asyncpg.connect(dsn(url))
    try:
        started = time.perf_counter()
        for batch in records:
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "trades", records=batch, columns=TRADE_INSERT_COLUMNS
                )
        return time.perf_counter() - started
    finally:
        await connection.close()


async def unnest_insert(url: str, fills: list[Fill]) -> float:
    connection = await asyncpg.connect(dsn(url))
    try:
        started = time.perf_counter()
        for start in range(0, len(fills), BATCH):
            columns = postgres_columns(fills[start : start + BATCH])
            async with connection.transaction():
                await connection.execute(PG_INSERT, *columns, datetime.now(UTC))
        return time.perf_counter() - started
    finally:
        await connection.close()


async def through_writer(url: str, fills: list[Fill]) -> float:
    async with Database(url) as db:
        started = time.perf_counter()
        async with db.writer(batch_size=BATCH, max_latency=0.02, max_queue=50_000) as writer:
            for start in range(0, len(fills), 1000):
                await writer.submit_many(fills[start : start + 1000])
        elapsed = time.perf_counter() - started
        assert writer.stats().written == len(fills), writer.stats()
    return elapsed


LAGS: list[list[float]] = []
"""The event loop's lag in each naive run, in seconds, one list per run."""


async def naive_producer(url: str, fills: list[Fill]) -> float:
    """`for fill in fills: await writer.submit(fill)`, a 1 ms sleeper measuring the loop."""
    lag: list[float] = []
    async with Database(url) as db:
        monitor = asyncio.ensure_future(_watch_loop(lag))
        started = time.perf_counter()
        async with db.writer(batch_size=BATCH, max_latency=0.02, max_queue=50_000) as writer:
            for fill in fills:
                await writer.submit(fill)
        elapsed = time.perf_counter() - started
        monitor.cancel()
        assert writer.stats().written == len(fills), writer.stats()
    LAGS.append(lag)
    return elapsed


async def _watch_loop(lag: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + 0.001
        await asyncio.sleep(0.001)
        lag.append(max(0.0, loop.time() - due))


async def one_of_many(
    url: str, index: int, processes: int, per_process: int, backtest_id: int
) -> None:
    """A process of its own: its fills, and a tenth of the next process's, re-delivered."""
    strategy_id = 1
    mine = list(synthetic_fills(per_process, strategy_id, backtest_id, start=index * per_process))
    theirs = list(
        synthetic_fills(
            per_process // 10, strategy_id, backtest_id, start=(index + 1) % processes * per_process
        )
    )
    async with Database(url) as db:
        async with db.writer(batch_size=BATCH, max_queue=50_000) as writer:
            await writer.submit_many(mine + theirs)
    print(writer.stats().written, writer.stats().duplicates)


async def many_writers(url: str, processes: int, per_process: int) -> tuple[float, int]:
    _, backtest_id = await fresh_database(url)
    started = time.perf_counter()
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child",
            str(index),
            "--url",
            url,
            "--per-process",
            str(per_process),
            "--backtest",
            str(backtest_id),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        for index in range(processes)
    ]
    for child in children:
        await child.wait()
        assert child.returncode == 0
    elapsed = time.perf_counter() - started
    async with Database(url) as db:
        stored = await db.trades.count()
    return elapsed, stored


async def main(args: argparse.Namespace) -> None:
    await ensure_database(args.url)
    strategy_id, backtest_id = await fresh_database(args.url)
    fills = list(synthetic_fills(args.fills, strategy_id, backtest_id))
    load_at_start = load_average()
    seconds: dict[str, list[float]] = {"raw_copy": [], "writer": [], "naive": [], "unnest": []}
    paths = {
        "raw_copy": raw_copy,
        "writer": through_writer,
        "naive": naive_producer,
        "unnest": unnest_insert,
    }
    for attempt in range(args.repeats):
        for name, path in paths.items():
            await fresh_database(args.url)
            seconds[name].append(await path(args.url, fills))
            print(f"  run {attempt + 1}: {name} {args.fills / seconds[name][-1]:,.0f} fills/s")
    load_at_end = load_average()
    rates = {name: spread([args.fills / s for s in values]) for name, values in seconds.items()}
    vs_raw = {
        name: spread([raw / s for raw, s in zip(seconds["raw_copy"], values, strict=True)])
        for name, values in seconds.items()
    }
    lag_ms = {
        "p99": spread([1000 * percentile(run, 99) for run in LAGS]),
        "max": spread([1000 * max(run) for run in LAGS]),
    }

    print(f"{args.processes} processes at once ...", flush=True)
    many_seconds, stored = await many_writers(args.url, args.processes, args.per_process)
    expected = args.processes * args.per_process
    assert stored == expected, f"{stored} stored, {expected} expected"
    many_rate = expected / many_seconds

    raw = rates["raw_copy"]["median"]
    print_table(
        f"PostgreSQL ingestion, {args.fills:,} fills, batch {BATCH}: median (min..max) of "
        f"{args.repeats} paired rounds, load average {load_at_start:.2f} at the start, "
        f"{load_at_end:.2f} at the end",
        ["path", "fills/s", "vs raw COPY, paired", ""],
        [
            (
                "raw asyncpg copy_records_to_table, ready records",
                shown(rates["raw_copy"], "{:,.0f}"),
                "1.00",
                "",
            ),
            (
                "TradeWriter (COPY in a savepoint, the batch token)",
                shown(rates["writer"], "{:,.0f}"),
                shown(vs_raw["writer"]),
                "",
            ),
            (
                "TradeWriter, naive producer",
                shown(rates["naive"], "{:,.0f}"),
                shown(vs_raw["naive"]),
                f"target >= 0.85; loop lag p99 {shown(lag_ms['p99'])} ms (<= 5), "
                f"max {shown(lag_ms['max'])} ms (<= 20)",
            ),
            (
                "INSERT ... SELECT FROM unnest (the old path)",
                shown(rates["unnest"], "{:,.0f}"),
                shown(vs_raw["unnest"]),
                "",
            ),
            (
                f"{args.processes} processes, a writer each, 10% re-delivered",
                f"{many_rate:,.0f}",
                f"{many_rate / raw:.2f}",
                f"{stored:,} stored, exactly the distinct fills",
            ),
        ],
    )
    write_json(
        "postgres" if not args.quick else "postgres-quick",
        {
            "fills": args.fills,
            "batch_size": BATCH,
            "repeats": args.repeats,
            "seconds": seconds,
            "load_average": {"start": load_at_start, "end": load_at_end},
            "fills_per_second": {**rates, "many_processes": many_rate},
            "vs_raw_copy_paired": vs_raw,
            "naive_loop_lag_ms": lag_ms,
            "processes": args.processes,
            "per_process": args.per_process,
            "many_processes_seconds": many_seconds,
            "many_processes_stored": stored,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--fills", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--per-process", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--backtest", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child is not None:
        asyncio.run(
            one_of_many(
                arguments.url,
                arguments.child,
                arguments.processes,
                arguments.per_process,
                arguments.backtest,
            )
        )
        sys.exit()
    if arguments.quick:
        arguments.fills, arguments.repeats, arguments.per_process = 20_000, 1, 5_000
    asyncio.run(main(arguments))
