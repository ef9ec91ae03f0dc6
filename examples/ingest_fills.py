"""Ingest simulated fills into the default database through the TradeWriter.

Run it with `./scripts/demo` (which migrates first), or after `quantflow migrate`:

    python examples/ingest_fills.py [--fills 200000] [--database-url URL]

Four producer tasks, one per symbol, walk a random price path and submit a fill per step,
the way backtest workers feed the writer. One writer task commits them in batches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantflow_async import Database, Fill, NotFound, TradeWriter

SYMBOLS = {"BTCUSDT": 42_000, "ETHUSDT": 2_300, "SOLUSDT": 95, "ADAUSDT": 0.55}
START = datetime(2024, 1, 1, tzinfo=UTC)


async def produce(writer: TradeWriter, ids: tuple[int, int], symbol: str, count: int) -> None:
    """Submit `count` fills of one symbol; `submit` waits only when the writer's queue is full."""
    strategy_id, backtest_id = ids
    rng = random.Random(symbol)
    price = float(SYMBOLS[symbol])
    for step in range(count):
        price *= 1 + rng.gauss(0, 0.001)
        quantity = round(rng.uniform(0.01, 2), 4)
        fill = Fill(
            strategy_id=strategy_id,
            backtest_id=backtest_id,
            symbol=symbol,
            side="buy" if rng.random() < 0.5 else "sell",
            quantity=quantity,  # floats go through their shortest repr: 0.1 stays 0.1
            price=f"{price:.4f}",  # or pass str / Decimal to say exactly what you mean
            fee=Decimal("0.0004") * Decimal(str(quantity)),
            executed_at=START + timedelta(minutes=step),
            external_id=f"demo-{backtest_id}-{symbol}-{step}",  # re-delivery is stored once
        )
        await writer.submit(fill)


async def report_progress(writer: TradeWriter, total: int, started: float) -> None:
    """Print how far the writer has got, every second, until cancelled."""
    while True:
        await asyncio.sleep(1)
        written = writer.stats().written
        rate = written / (time.perf_counter() - started)
        print(f"  {written:>9,} of {total:,} fills committed ({rate:,.0f} fills/s)", flush=True)


async def main(fills: int, database_url: str | None) -> None:
    async with Database(database_url) as db:
        try:
            strategy = await db.strategies.get_by_name("demo-random-walk")
        except NotFound:
            strategy = await db.strategies.create(
                name="demo-random-walk", config={"kind": "random walk"}
            )
        backtest = await db.backtests.create(
            strategy_id=strategy.id,
            name=f"demo run {datetime.now(UTC):%Y-%m-%d %H:%M:%S}",
            start_date=START,
            end_date=START + timedelta(minutes=fills),
            initial_capital=Decimal("100000"),
        )
        await db.backtests.set_status(backtest.id, "running")

        per_symbol = fills // len(SYMBOLS)
        total = per_symbol * len(SYMBOLS)
        print(f"backtest {backtest.id}: ingesting {total:,} fills from {len(SYMBOLS)} producers")
        started = time.perf_counter()
        async with db.writer(batch_size=5000) as writer:
            progress = asyncio.create_task(report_progress(writer, total, started))
            try:
                async with asyncio.TaskGroup() as producers:
                    for symbol in SYMBOLS:
                        ids = (strategy.id, backtest.id)
                        producers.create_task(produce(writer, ids, symbol, per_symbol))
            finally:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
        # Leaving the `async with` drained the queue: every submitted fill is committed now.
        elapsed = time.perf_counter() - started
        stats = writer.stats()
        await db.backtests.set_status(backtest.id, "completed")

        print(f"backtest {backtest.id}: {stats.written:,} fills in {elapsed:.2f} s")
        print(f"  {stats.written / elapsed:,.0f} fills/s (fills made and stored on one event loop)")
        print(f"  {stats.batches} batches, commit p50 {1000 * (stats.commit_p50 or 0):.1f} ms")
        print("\nsumming the backtest's trades per symbol (exact Decimal sums)...", flush=True)
        summary = await db.trades.summary(backtest_id=backtest.id)
        print(f"{'symbol':<8} {'trades':>8} {'bought':>14} {'sold':>14} {'fees':>14}")
        for row in summary:
            print(
                f"{row.symbol:<8} {row.trade_count:>8,} {row.bought_quantity:>14.4f} "
                f"{row.sold_quantity:>14.4f} {row.fees:>14.8f}"
            )
        print(f"\ntrades stored in all: {await db.trades.count():,}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=200_000, help="how many fills to ingest")
    parser.add_argument("--database-url", help="default: $QUANTFLOW_DATABASE_URL or ./dev.sqlite3")
    args = parser.parse_args()
    asyncio.run(main(args.fills, args.database_url))
