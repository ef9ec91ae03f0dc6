"""A live trading bot on asyncio: ticks in, decisions on each tick, every fill made durable.

    python examples/live_bot.py [--seconds 15] [--database-url URL]

A task stands in for the exchange's websocket and pushes random-walk ticks into a queue. The bot
decides on each tick (buy a dip below the recent average, sell a rise above it), "trades" on
the simulated exchange at the tick's price, and stores each fill with `submit(fill,
wait=True)`: only once that returns is the fill on disk, so only then does the bot count it.
A third task measures how late the event loop runs while all this happens. Press Ctrl-C to
stop: the bot finishes its step, the writer commits what it holds, and the figures print.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from quantflow_async import Database, Fill, NotFound, TradeWriter

SYMBOL = "BTCUSDT"
TICKS_PER_SECOND = 200
LOT = Decimal("0.01")  # what the bot buys or sells on each decision
MAX_LOTS = 5  # the most it holds at once
WINDOW = 50  # ticks in the recent average
FEE_RATE = Decimal("0.0004")


@dataclass(frozen=True)
class Tick:
    price: Decimal
    at: datetime


async def exchange_feed(ticks: asyncio.Queue[Tick | None], stop: asyncio.Event) -> None:
    """Random-walk prices at TICKS_PER_SECOND, as a websocket client would push them."""
    rng = random.Random()
    price = 42_000.0
    while not stop.is_set():
        price *= 1 + rng.gauss(0, 0.0004)
        tick = Tick(Decimal(f"{price:.2f}"), datetime.now(UTC))
        if ticks.full():
            ticks.get_nowait()  # a slow bot drops the oldest tick, as a real feed handler would
        ticks.put_nowait(tick)
        await asyncio.sleep(1 / TICKS_PER_SECOND)
    await ticks.put(None)  # tells the bot the feed is closed


async def measure_loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """How late the event loop wakes a task that asked to sleep 5 ms: the loop's lag."""
    interval = 0.005
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(interval)
        lags.append(time.perf_counter() - asked - interval)


async def trade(
    writer: TradeWriter,
    strategy_id: int,
    ticks: asyncio.Queue[Tick | None],
    run: str,
) -> int:
    """Decide on every tick; store each fill and wait until it is committed. Returns fills."""
    recent: deque[Decimal] = deque(maxlen=WINDOW)
    lots, cost, fills = 0, Decimal(0), 0
    while (tick := await ticks.get()) is not None:
        recent.append(tick.price)
        if len(recent) < WINDOW:
            continue
        average = sum(recent) / len(recent)
        if tick.price < average * Decimal("0.9995") and lots < MAX_LOTS:
            side, pnl = "buy", None
            lots, cost = lots + 1, cost + tick.price
        elif tick.price > average * Decimal("1.0005") and lots > 0:
            entry = cost / lots  # the average price of the lots held
            side, pnl = "sell", (tick.price - entry) * LOT
            lots, cost = lots - 1, cost - entry
        else:
            continue
        fills += 1
        fill = Fill(
            strategy_id=strategy_id,
            symbol=SYMBOL,
            side=side,
            quantity=LOT,
            price=tick.price,
            fee=(tick.price * LOT * FEE_RATE).quantize(Decimal("0.00000001")),
            pnl=None if pnl is None else pnl.quantize(Decimal("0.00000001")),
            executed_at=tick.at,
            external_id=f"{run}-{fills:06d}",  # the venue's fill id: never stored twice
        )
        # wait=True returns once the fill is committed: a bot that acts on its position
        # after this line never acts on a fill a crash could lose.
        await writer.submit(fill, wait=True)
        print(f"committed {fill.external_id} {side} {LOT} {SYMBOL} @ {tick.price}", flush=True)
    return fills


def milliseconds(samples: list[float], quantile: float) -> float:
    if len(samples) < 2:
        return 1000 * max(samples, default=0.0)
    return 1000 * statistics.quantiles(samples, n=100, method="inclusive")[int(quantile) - 1]


async def main(seconds: float, database_url: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl-C (and a `kill`) asks every task to finish its step instead of tearing them down.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.call_later(seconds, stop.set)

    async with Database(database_url) as db:
        await db.migrate()  # a fresh checkout has no schema yet; a current one is left as is
        try:
            strategy = await db.strategies.get_by_name("live-bot-demo")
        except NotFound:
            strategy = await db.strategies.create(
                name="live-bot-demo", config={"lot": str(LOT), "max_lots": MAX_LOTS}
            )
        run = f"live-{uuid.uuid4().hex[:12]}"  # this run's fills: live-<run>-000001, ...
        print(f"trading {SYMBOL} for {seconds:g} s as strategy {strategy.id} (run {run})")
        print("press Ctrl-C to stop early", flush=True)

        ticks: asyncio.Queue[Tick | None] = asyncio.Queue(maxsize=1000)
        lags: list[float] = []
        # A bot waits for each commit, so a short max_latency keeps that wait short.
        async with db.writer(max_latency=0.005) as writer:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(exchange_feed(ticks, stop))
                tasks.create_task(measure_loop_lag(lags, stop))
                trading = tasks.create_task(trade(writer, strategy.id, ticks, run))
        # Leaving `async with db.writer()` drained it: every fill submitted is committed.
        stats = writer.stats()
        stored = await db.trades.count(strategy_id=strategy.id)

    print(f"\nstopped: {trading.result()} fills committed ({stats.written} new rows)")
    print(f"trades of strategy {strategy.id} stored in all: {stored}")
    print(
        f"event-loop lag while trading: p50 {milliseconds(lags, 50):.2f} ms, "
        f"p99 {milliseconds(lags, 99):.2f} ms, max {1000 * max(lags, default=0):.2f} ms "
        f"({len(lags)} samples)"
    )
    if stats.wait_latency_p50 is not None and stats.wait_latency_p99 is not None:
        print(
            f"submit(wait=True) until committed: p50 {1000 * stats.wait_latency_p50:.1f} ms, "
            f"p99 {1000 * stats.wait_latency_p99:.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="how long to trade (15)")
    parser.add_argument("--database-url", help="default: $QUANTFLOW_DATABASE_URL or ./dev.sqlite3")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.database_url))
