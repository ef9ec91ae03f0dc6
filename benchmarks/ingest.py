"""Benchmark: the TradeWriter against raw sqlite3 and the ORM, on the same rows, in one run.

    python benchmarks/ingest.py [--fills 1000000] [--repeats 5] [--quick]
    python benchmarks/ingest.py --throughput-only    (the paired rounds and loop lag alone)

Measures, on SQLite (WAL, synchronous=NORMAL, the schema's indexes):
  1. fills/s through the writer, submit() to committed, for --fills pre-built fills;
  2. raw sqlite3 executemany of the same rows as ready tuples, same statement, pragmas and batch;
  3. SQLAlchemy ORM add_all + commit per 5,000, and ORM add + commit per fill;
  4. commit latency of a live bot submitting 1,000 fills/s with wait=True;
  5. event-loop lag while the writer ingests --fills fills (how late a 1 ms sleeper wakes),
     from a polite producer (yields every 1,000 fills) and from a naive one
     (`for fill in fills: await writer.submit(fill)`), with each one's throughput;
  6. the cost of the batch token: raw sqlite3 with and without the token's two statements in
     each transaction;
  7. the WAL's largest size while the writer ingests and 8 readers page (the soak's set-up)
     for --wal-seconds;
  8. peak RSS of a process ingesting 100,000 and 2,000,000 fills made on the fly.
Runs 2, 1 and 5 are paired: each of --repeats rounds runs raw sqlite3, the writer with each
producer, and the loop-lag runs one after the other on fresh files, so a ratio is taken within a
round; every figure is the median over the rounds with its range (min..max). The load average
at the start and end is recorded: take figures on a quiet machine.
Prints a table and writes benchmarks/results/ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    fresh_database,
    load_average,
    median,
    percentile,
    print_table,
    shown,
    spread,
    synthetic_fills,
    write_json,
)
from contention import run as soak_set_up
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import registry

from quantflow_async import Database, Fill
from quantflow_async.records import TRADE_INSERT_COLUMNS, sqlite_rows
from quantflow_async.store.schema import trades
from quantflow_async.store.trade_insert import (
    SQLITE_FORGET_BATCHES,
    SQLITE_INSERT,
    SQLITE_RECORD_BATCH,
)
from quantflow_async.validation import epoch_micros

BATCH = 5000
MAX_LATENCY = 0.02


class OrmTrade:
    """A plain ORM mapping of the trades table, as an ORM-based bot would write it."""


registry().map_imperatively(OrmTrade, trades)


def url_for(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def raw_sqlite(path: Path, fills: list[Fill], *, token: bool = False) -> float:
    """The physical limit through Python: ready tuples, executemany, one transaction a batch;
    with `token`, also the two statements the writer adds to each batch's transaction."""
    rows = sqlite_rows(fills)
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    now = epoch_micros(datetime.now(UTC))
    sql = SQLITE_INSERT.format(now=now)
    started = time.perf_counter()
    previous = None
    for number, start in enumerate(range(0, len(rows), BATCH)):
        connection.execute("BEGIN IMMEDIATE")
        inserted = connection.executemany(sql, rows[start : start + BATCH]).rowcount
        if token:
            connection.execute(SQLITE_RECORD_BATCH, (f"bench:{number}", inserted, now))
            connection.execute(SQLITE_FORGET_BATCHES, (previous, now - 86_400_000_000))
            previous = f"bench:{number}"
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


async def through_writer(
    path: Path, fills: list[Fill], lag: list[float] | None = None, *, naive: bool = False
) -> float:
    """submit() every fill from one producer; the clock stops when the writer has drained."""
    async with Database(url_for(path)) as db:
        monitor = asyncio.ensure_future(_watch_loop(lag)) if lag is not None else None
        started = time.perf_counter()
        async with db.writer(batch_size=BATCH, max_latency=MAX_LATENCY, max_queue=50_000) as w:
            if naive:
                for fill in fills:  # the loop every user writes first
                    await w.submit(fill)
            else:
                for start in range(0, len(fills), 1000):
                    for fill in fills[start : start + 1000]:
                        await w.submit(fill)
                    await asyncio.sleep(0)  # a producer that lets the rest of its loop run
        elapsed = time.perf_counter() - started
        if monitor is not None:
            monitor.cancel()
        assert w.stats().written == len(fills), w.stats()
    return elapsed


async def _watch_loop(lag: list[float] | None) -> None:
    assert lag is not None
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + 0.001
        await asyncio.sleep(0.001)
        lag.append(max(0.0, loop.time() - due))


def _orm_object(fill: Fill) -> OrmTrade:
    trade = OrmTrade()
    for name in TRADE_INSERT_COLUMNS:
        setattr(trade, name, getattr(fill, name))
    return trade


async def orm(path: Path, fills: list[Fill], per_commit: int) -> float:
    async with Database(url_for(path)) as db:
        started = time.perf_counter()
        async with AsyncSession(db.engine) as session:
            for start in range(0, len(fills), per_commit):
                session.add_all([_orm_object(f) for f in fills[start : start + per_commit]])
                await session.commit()
        return time.perf_counter() - started


async def live_bot(path: Path, seconds: float, rate: int) -> list[float]:
    """A bot that fills `rate` times a second and awaits each commit (wait=True)."""
    strategy_id, _ = await fresh_database(url_for(path))
    latencies: list[float] = []
    async with Database(url_for(path)) as db:
        async with db.writer(batch_size=2000, max_latency=MAX_LATENCY) as writer:

            async def one(fill: Fill) -> None:
                started = time.perf_counter()
                await writer.submit(fill, wait=True)
                latencies.append(time.perf_counter() - started)

            fills = synthetic_fills(int(seconds * rate), strategy_id, None)
            loop = asyncio.get_running_loop()
            begin = loop.time()
            async with asyncio.TaskGroup() as bot:
                for n, fill in enumerate(fills):
                    bot.create_task(one(fill))
                    await asyncio.sleep(max(0.0, begin + (n + 1) / rate - loop.time()))
    return latencies


def peak_rss_child(count: int, folder: Path) -> float:
    """Peak RSS (MB) of a fresh process that makes and ingests `count` fills."""
    result = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(count), "--folder", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


async def rss_child(count: int, folder: Path) -> None:
    path = folder / f"rss-{count}.sqlite3"
    strategy_id, backtest_id = await fresh_database(url_for(path))
    async with Database(url_for(path)) as db:
        async with db.writer(batch_size=BATCH, max_queue=50_000) as writer:
            for fill in synthetic_fills(count, strategy_id, backtest_id):
                await writer.submit(fill)
        assert writer.stats().written == count
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Unlike ru_maxrss it does not carry over
    the parent's peak from before exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def watch_the_wal(folder: Path, seconds: float) -> dict[str, float]:
    """The WAL's size, sampled 4 times a second, while the writer ingests and 8 readers page:
    bounded if the second half of the run peaks no higher than the first."""
    print(f"soak set-up for {seconds:.0f} s, watching the WAL ...", flush=True)
    sizes: list[int] = []
    await soak_set_up(url_for(folder / "wal.sqlite3"), seconds, 8, cli=False, wal_sizes=sizes)
    half = len(sizes) // 2
    return {
        "seconds": seconds,
        "max_bytes": max(sizes, default=0),
        "first_half_max_bytes": max(sizes[:half], default=0),
        "second_half_max_bytes": max(sizes[half:], default=0),
        "last_bytes": sizes[-1] if sizes else 0,
    }


async def wal_only(args: argparse.Namespace) -> None:
    wal = await watch_the_wal(Path(tempfile.mkdtemp(prefix="quantflow-bench-")), args.wal_seconds)
    print_table(
        f"WAL size, writer + 8 readers for {args.wal_seconds:.0f} s",
        ["measure", "MB"],
        [
            ("largest, first half of the run", f"{wal['first_half_max_bytes'] / 1e6:.0f}"),
            ("largest, second half of the run", f"{wal['second_half_max_bytes'] / 1e6:.0f}"),
            ("at the end", f"{wal['last_bytes'] / 1e6:.0f}"),
        ],
    )
    write_json("ingest-wal", {"wal": wal})


async def paired_rounds(folder: Path, fills: list[Fill], repeats: int) -> dict[str, Any]:
    """Raw sqlite3 (with and without the token's statements), the writer with a polite and a
    naive producer, and both again with the loop watched, one after the other in each round."""
    count = len(fills)
    load_at_start = load_average()
    seconds: dict[str, list[float]] = {"raw": [], "raw_token": [], "writer": [], "naive": []}
    lags: dict[str, list[list[float]]] = {"writer": [], "naive": []}
    for attempt in range(repeats):
        for name in seconds:
            path = folder / f"{name}-{attempt}.sqlite3"
            await fresh_database(url_for(path))
            gc.collect()
            if name.startswith("raw"):
                seconds[name].append(raw_sqlite(path, fills, token=name == "raw_token"))
            else:
                seconds[name].append(await through_writer(path, fills, naive=name == "naive"))
            rate = count / seconds[name][-1]
            print(f"  run {attempt + 1}: {name} {rate:,.0f} fills/s", flush=True)
        for name in lags:
            path = folder / f"lag-{name}-{attempt}.sqlite3"
            await fresh_database(url_for(path))
            lag: list[float] = []
            await through_writer(path, fills, lag, naive=name == "naive")
            lags[name].append(lag)
    raw_s = seconds["raw"]
    return {
        "load_average": {"start": load_at_start, "end": load_average()},
        "seconds": seconds,
        "fills_per_second": {
            name: spread([count / s for s in values]) for name, values in seconds.items()
        },
        "vs_raw_paired": {  # each round's run against the same round's raw sqlite3
            name: spread([raw / s for raw, s in zip(raw_s, values, strict=True)])
            for name, values in seconds.items()
        },
        "naive_vs_polite_paired": spread(
            [w / n for w, n in zip(seconds["writer"], seconds["naive"], strict=True)]
        ),
        "lag_ms": {
            name: {
                "p99": spread([1000 * percentile(run, 99) for run in runs]),
                "max": spread([1000 * max(run) for run in runs]),
            }
            for name, runs in lags.items()
        },
    }


def throughput_title(args: argparse.Namespace, paired: dict[str, Any]) -> str:
    load = paired["load_average"]
    return (
        f"SQLite ingestion, batch {BATCH}: median (min..max) of {args.repeats} paired rounds, "
        f"load average {load['start']:.2f} at the start, {load['end']:.2f} at the end"
    )


def throughput_rows(count: int, paired: dict[str, Any]) -> list[tuple[str, ...]]:
    rates, vs_raw = paired["fills_per_second"], paired["vs_raw_paired"]
    naive_vs_polite = shown(paired["naive_vs_polite_paired"], "{:.3f}")
    return [
        (
            "raw sqlite3 executemany, ready tuples",
            f"{count:,}",
            shown(rates["raw"], "{:,.0f}"),
            "1.00",
            "",
        ),
        (
            "TradeWriter, submit() to committed",
            f"{count:,}",
            shown(rates["writer"], "{:,.0f}"),
            shown(vs_raw["writer"]),
            "target >= 0.90",
        ),
        (
            "TradeWriter, naive producer (no yields of its own)",
            f"{count:,}",
            shown(rates["naive"], "{:,.0f}"),
            shown(vs_raw["naive"]),
            f"target >= 0.90; {naive_vs_polite} of the polite producer",
        ),
        (
            "raw sqlite3 + the batch token's two statements",
            f"{count:,}",
            shown(rates["raw_token"], "{:,.0f}"),
            shown(vs_raw["raw_token"], "{:.3f}"),
            "the token's cost",
        ),
    ]


def lag_rows(count: int, lag_ms: dict[str, Any]) -> list[tuple[str, ...]]:
    writer, naive = lag_ms["writer"], lag_ms["naive"]
    return [
        (f"loop lag while ingesting {count:,} fills: p99", f"{shown(writer['p99'])} ms", "<= 5 ms"),
        (
            f"loop lag while ingesting {count:,} fills: max",
            f"{shown(writer['max'])} ms",
            "<= 20 ms",
        ),
        ("loop lag, naive producer: p99", f"{shown(naive['p99'])} ms", "<= 5 ms"),
        ("loop lag, naive producer: max", f"{shown(naive['max'])} ms", "<= 20 ms"),
    ]


async def throughput_only(args: argparse.Namespace) -> None:
    """Only the paired rounds: the writer against raw sqlite3, and the loop's lag."""
    folder = Path(tempfile.mkdtemp(prefix="quantflow-bench-"))
    print(f"building {args.fills:,} fills ...", flush=True)
    strategy_id, backtest_id = await fresh_database(url_for(folder / "probe.sqlite3"))
    fills = list(synthetic_fills(args.fills, strategy_id, backtest_id))
    paired = await paired_rounds(folder, fills, args.repeats)
    header = ["path", "fills", "fills/s", "vs raw, paired", ""]
    print_table(throughput_title(args, paired), header, throughput_rows(args.fills, paired))
    print_table("Loop lag", ["measure", "value", "target"], lag_rows(args.fills, paired["lag_ms"]))
    write_json(
        "ingest-throughput" if not args.quick else "ingest-throughput-quick",
        {"fills": args.fills, "batch_size": BATCH, "repeats": args.repeats, **paired},
    )


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="quantflow-bench-"))
    count = args.fills
    # Memory first, from a small parent, each child a fresh process.
    rss_small = peak_rss_child(100_000, folder)
    rss_large = peak_rss_child(args.rss_fills, folder)
    print(f"building {count:,} fills ...", flush=True)
    strategy_id, backtest_id = await fresh_database(url_for(folder / "probe.sqlite3"))
    fills = list(synthetic_fills(count, strategy_id, backtest_id))

    paired = await paired_rounds(folder, fills, args.repeats)

    orm_batch_fills = fills[: args.orm_fills]
    orm_single_fills = fills[: args.orm_single_fills]
    orm_batch_s, orm_single_s = [], []
    for attempt in range(args.repeats):
        path = folder / f"orm-batch-{attempt}.sqlite3"
        await fresh_database(url_for(path))
        orm_batch_s.append(await orm(path, orm_batch_fills, 5000))
        path = folder / f"orm-single-{attempt}.sqlite3"
        await fresh_database(url_for(path))
        orm_single_s.append(await orm(path, orm_single_fills, 1))
        print(f"  run {attempt + 1}: orm done", flush=True)

    del fills
    gc.collect()

    wal = await watch_the_wal(folder, args.wal_seconds)

    live = await live_bot(folder / "live.sqlite3", args.live_seconds, 1000)

    rates, vs_raw, lag_ms = paired["fills_per_second"], paired["vs_raw_paired"], paired["lag_ms"]
    raw_rate = rates["raw"]["median"]
    orm_batch_rate = len(orm_batch_fills) / median(orm_batch_s)
    orm_single_rate = len(orm_single_fills) / median(orm_single_s)
    live_p50, live_p99 = 1000 * percentile(live, 50), 1000 * percentile(live, 99)
    live_target = 2 * MAX_LATENCY * 1000 + 5

    rows = [
        *throughput_rows(count, paired),
        (
            "ORM add_all + commit per 5,000",
            f"{len(orm_batch_fills):,}",
            f"{orm_batch_rate:,.0f}",
            f"{orm_batch_rate / raw_rate:.2f}",
            "",
        ),
        (
            "ORM add + commit per fill",
            f"{len(orm_single_fills):,}",
            f"{orm_single_rate:,.0f}",
            f"{orm_single_rate / raw_rate:.3f}",
            "",
        ),
    ]
    print_table(
        throughput_title(args, paired), ["path", "fills", "fills/s", "vs raw, paired", ""], rows
    )
    print_table(
        "Latency, loop lag and memory",
        ["measure", "value", "target"],
        [
            (
                f"live bot, 1,000 fills/s, wait=True, max_latency {MAX_LATENCY * 1000:.0f} ms: p50",
                f"{live_p50:.1f} ms",
                "",
            ),
            (
                "live bot, 1,000 fills/s, wait=True: commit latency p99",
                f"{live_p99:.1f} ms",
                f"<= {live_target:.0f} ms",
            ),
            *lag_rows(count, lag_ms),
            (
                f"largest WAL, writer + 8 readers, {args.wal_seconds:.0f} s: first / second half",
                f"{wal['first_half_max_bytes'] / 1e6:.0f} / "
                f"{wal['second_half_max_bytes'] / 1e6:.0f} MB",
                "bounded",
            ),
            ("peak RSS, 100,000 fills", f"{rss_small:.0f} MB", ""),
            (
                f"peak RSS, {args.rss_fills:,} fills",
                f"{rss_large:.0f} MB",
                f"<= {rss_small + 50:.0f} MB",
            ),
        ],
    )
    write_json(
        "ingest" if not args.quick else "ingest-quick",
        {
            "fills": count,
            "batch_size": BATCH,
            "repeats": args.repeats,
            **paired,
            "seconds": {**paired["seconds"], "orm_batch": orm_batch_s, "orm_single": orm_single_s},
            "fills_per_second": {
                **rates,
                "orm_add_all_per_5000": orm_batch_rate,
                "orm_commit_per_fill": orm_single_rate,
            },
            "live_commit_ms": {"p50": live_p50, "p99": live_p99, "target_p99": live_target},
            "token_cost": 1 - vs_raw["raw_token"]["median"],
            "wal": wal,
            "peak_rss_mb": {"100000": rss_small, str(args.rss_fills): rss_large},
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--orm-fills", type=int, default=100_000)
    parser.add_argument("--orm-single-fills", type=int, default=5_000)
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument("--rss-fills", type=int, default=2_000_000)
    parser.add_argument("--wal-seconds", type=float, default=90.0)
    parser.add_argument("--wal-only", action="store_true", help="only the WAL measurement")
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="only the paired rounds against raw sqlite3 and the loop lag (ingest-throughput.json)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.rss_child:
        asyncio.run(rss_child(arguments.rss_child, arguments.folder))
        sys.exit()
    if arguments.quick:
        arguments.fills, arguments.repeats, arguments.orm_fills = 50_000, 1, 10_000
        arguments.orm_single_fills, arguments.live_seconds, arguments.rss_fills = 500, 2.0, 200_000
        arguments.wal_seconds = 5.0
    if arguments.wal_only:
        asyncio.run(wal_only(arguments))
    elif arguments.throughput_only:
        asyncio.run(throughput_only(arguments))
    else:
        asyncio.run(main(arguments))
