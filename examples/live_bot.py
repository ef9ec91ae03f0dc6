"""A live bot on the paper exchange, killed mid-order and restarted: what the order journal is for.

    pip install -e '.[live]'      # ccxt and aiohttp, once
    python examples/live_bot.py [--database-url URL]

A paper exchange replays a made-up market; a bot trades on it, journaling each order before it
reaches the exchange. Halfway the bot is killed with SIGKILL while an order is on its way; the
exchange trades on; the restarted bot restores its journal, asks the exchange what happened
(reconciliation) and shows that the two agree. The database is $QUANTFLOW_DATABASE_URL, else
./dev.sqlite3 (migrated if needed); the exchange lives in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from quantflow_async import Database, NotFound
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.journal import OrderJournal
from quantflow_async.live.order_flow import (
    cancel_open_orders,
    record_answer,
    send_order,
    sync_fills,
)
from quantflow_async.live.orders import OPEN_STATUSES, Order, OrderRequest
from quantflow_async.live.venue import OrderSide, OrderType

SYMBOL = "BTCUSDT"
KILL_AT_ORDER = 7  # the example kills the bot while it sends its 7th order
DOWN_SECONDS = 2.0  # and lets the exchange trade on this long without it
CENT = Decimal("0.01")  # the market's tick: a limit price is a multiple of it
# What the bot does, one step every 0.3 s: an order (type, side, quantity, limit price as a
# multiple of the last price), or None: cancel the oldest order resting far from the price.
PLAN: list[tuple[OrderType, OrderSide, str, str | None] | None] = [
    ("market", "buy", "0.05", None),
    ("limit", "buy", "0.02", "0.9"),  # far below the price: rests until cancelled
    ("limit", "sell", "0.02", "1.1"),  # far above: rests too
    ("limit", "buy", "0.1", "0.999"),  # just below: fills over several bars
    None,
    ("market", "sell", "0.03", None),
    ("limit", "sell", "0.1", "1.001"),
    ("limit", "buy", "0.1", "0.998"),
]


# -- the bot: journal first, exchange second -------------------------------------------------


async def bot(url: str, database_url: str | None, restarted: bool) -> None:
    """Restore and reconcile; then trade until killed, or (restarted) compare and stop."""
    venue = CcxtVenue.connect(url, VenueCredentials.placeholder(), name="paper")
    async with Database(database_url) as db, venue:
        await db.migrate()  # nothing to do once the schema is current
        try:
            strategy = await db.strategies.get_by_name("live-bot-demo")
        except NotFound:
            strategy = await db.strategies.create(name="live-bot-demo")
        # Every paper exchange numbers its orders and trades from 1: name the account in the
        # journal (as `quantflow live run` does), so that two runs' ids never meet.
        account = f"paper-{await venue.account_id()}"
        async with db.journal(strategy_id=strategy.id, venue=account) as journal:
            # Every start begins the same way: what did I leave unfinished, what became of it?
            restored = await journal.restore()
            unfinished = [*restored.in_doubt, *restored.open_orders]
            print(f"the journal of {account} holds {len(unfinished)} unfinished orders")
            report = await journal.reconcile(venue, symbols=[SYMBOL])
            print("reconciliation found:", *report.summary(), sep="\n  ")
            unchanged = 0
            for before in unfinished:  # what became of each, now in the journal
                after = known(journal, before.client_order_id)
                if (after.status, after.filled_quantity) == (before.status, before.filled_quantity):
                    unchanged += 1
                    continue
                print(
                    f"  #{after.id}: {before.status} {show(before.filled_quantity)} -> "
                    f"{after.status} {show(after.filled_quantity)}"
                )
            if unchanged:
                print(f"  {unchanged} of the unfinished orders are unchanged: still open there")
            if not restarted:
                await trade(journal, venue)
                return
            await compare(db, journal, venue)
            print(f"cancelled our {await cancel_open_orders(journal, venue, SYMBOL)} open orders")
            await sync_fills(journal, venue, SYMBOL)
            await journal.flush()  # leaving the block would flush too
            print(f"every fact is on disk: quantflow orders list --venue {account}")


async def trade(journal: OrderJournal, venue: CcxtVenue) -> None:
    """Go through PLAN, journaling each order before it is sent and each fill it gets."""
    shown: dict[str, Decimal] = {}  # our orders (client order id) -> the filled quantity shown
    far: list[str] = []  # our orders resting far from the price, oldest first
    for step in range(40):  # the example kills the bot long before the end
        planned = PLAN[step % len(PLAN)]
        if planned is None and far:
            cid = far.pop(0)
            await journal.cancel_requested(cid)  # journaled before the exchange is asked
            print(f"cancel    #{known(journal, cid).id} requested")
            answer = await venue.cancel_order(SYMBOL, client_order_id=cid)
            await record_answer(journal, venue, cid, answer)
            print(f"answered  #{known(journal, cid).id} {known(journal, cid).status}")
        elif planned is not None:
            kind, side, quantity, away = planned
            price = (await venue.fetch_ohlcv(SYMBOL, "1m", limit=1))[-1].open
            limit = None if away is None else (price * Decimal(away)).quantize(CENT)
            request = OrderRequest(SYMBOL, side, Decimal(quantity), type=kind, limit_price=limit)
            still_open = sum(known(journal, cid).status in OPEN_STATUSES for cid in shown)
            at = f" @ {limit}" if limit else ""
            print(f"sending   {kind} {side} {quantity}{at} (open orders: {still_open})")
            # The intent is committed before anything is sent; then the exchange's answer.
            order = await send_order(journal, venue, request)
            shown[order.client_order_id] = Decimal(0)
            print(f"intended  #{order.id} as {order.client_order_id}")
            print(f"answered  #{order.id} {order.status}, exchange order {order.venue_order_id}")
            if away in ("0.9", "1.1"):
                far.append(order.client_order_id)  # to cancel later
        # Fills come from the exchange's trades, each journaled once whatever happens.
        await sync_fills(journal, venue, SYMBOL)
        for cid, filled in shown.items():
            order = known(journal, cid)
            if order.filled_quantity != filled:
                shown[cid] = order.filled_quantity
                print(
                    f"fill      #{order.id} {show(order.filled_quantity)} of {order.quantity} "
                    f"filled at {order.average_price:.2f} ({order.status})"
                )
        await asyncio.sleep(0.3)


async def compare(db: Database, journal: OrderJournal, venue: CcxtVenue) -> None:
    """Every order of this account as the journal and as the exchange hold it."""
    print("order  type    side   journal: status   filled   exchange: status  filled")
    for order in await db.orders.list(strategy_id=journal.strategy_id, venue=journal.venue):
        there = await venue.fetch_order(SYMBOL, client_order_id=order.client_order_id)
        theirs = ("never got it", "") if there is None else (there.status, there.filled_quantity)
        row = (
            f"#{order.id:<5} {order.type:<7} {order.side:<6} {order.status:<17} "
            f"{show(order.filled_quantity):<8} {theirs[0]:<17} {show(theirs[1])}"
        )
        print(row.rstrip())
    position = journal.position(SYMBOL)
    held = Decimal(0) if position is None else position.quantity
    balance = (await venue.fetch_balance())["BTC"].total  # the account started with no BTC
    print(f"position: {show(held)} BTC in the journal, {show(balance)} BTC at the exchange")


def known(journal: OrderJournal, cid: str) -> Order:
    """An order this bot restored or placed: the journal keeps each in memory."""
    order = journal.order(cid)
    assert order is not None
    return order


def show(number: Decimal | str) -> str:
    return f"{number.normalize():f}" if isinstance(number, Decimal) else number


# -- the example: an exchange, a bot, a SIGKILL, the same bot again ---------------------------


def write_bars(path: Path, count: int = 600) -> Path:
    """A seeded random walk of 1-minute bars; the exchange replays one every 0.2 s."""
    rng, price, start = random.Random(7), 42_000.0, datetime(2024, 1, 1, tzinfo=UTC)
    lines = ["time,open,high,low,close,volume"]
    for k in range(count):
        close = price * (1 + rng.gauss(0, 0.002))
        high = max(price, close) * (1 + abs(rng.gauss(0, 0.001)))
        low = min(price, close) * (1 - abs(rng.gauss(0, 0.001)))
        volume = rng.uniform(0.1, 0.3)  # small: a resting order fills over several bars
        when = (start + k * timedelta(minutes=1)).isoformat()
        lines.append(f"{when},{price:.2f},{high:.2f},{low:.2f},{close:.2f},{volume:.3f}")
        price = close
    path.write_text("\n".join(lines) + "\n")
    return path


def start_exchange(folder: Path) -> subprocess.Popen[str]:
    """`quantflow venue serve` on a free port, its state and bars in `folder`."""
    return subprocess.Popen(
        [sys.executable, "-m", "quantflow_async.cli", "venue", "serve",
         "--data", str(write_bars(folder / "bars.csv")), "--symbol", SYMBOL, "--port", "0",
         "--state", str(folder / "exchange.sqlite3"), "--bar-seconds", "0.2",
         "--max-volume-share", "0.2", "--cash", "100000"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def start_bot(url: str, database_url: str | None, mode: str) -> subprocess.Popen[str]:
    """This script again, as the bot: a process of its own, so that it can be killed."""
    args = [sys.executable, "-u", __file__, "--bot", mode, "--venue", url]
    if database_url:
        args += ["--database-url", database_url]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen[str], grace: float = 0.0) -> None:
    """Give a child `grace` seconds to end by itself, then SIGTERM, then SIGKILL."""
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def relay(bot: subprocess.Popen[str]) -> Iterator[str]:
    """The bot's lines, each printed as it comes."""
    assert bot.stdout is not None
    for line in bot.stdout:
        print(f"  bot | {line}", end="")
        yield line


def run(database_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="quantflow-live-bot-") as folder:
        exchange = start_exchange(Path(folder))
        bot, interrupted = None, False
        try:
            assert exchange.stdout is not None
            first = exchange.stdout.readline()  # paper exchange BTCUSDT on http://... (state ..)
            if (listening := re.search(r" on (http://\S+)", first)) is None:
                raise SystemExit(f"the paper exchange did not start: {first!r}")
            url = listening.group(1)
            print(f"paper exchange on {url}, a bar every 0.2 s; starting the bot")
            bot = start_bot(url, database_url, "trade")
            sent = 0
            for line in relay(bot):
                sent += line.startswith("sending")
                if sent == KILL_AT_ORDER:
                    break
            else:
                raise SystemExit("the bot ended before it was to be killed")
            # A few milliseconds later: somewhere on that order's way (its intent durable or
            # not yet, at the exchange or not yet, the answer journaled or not yet).
            time.sleep(random.uniform(0.005, 0.03))
            still_open = re.findall(r"\d+", line)[-1]  # sending ... (open orders: N)
            print(
                f"killing the bot (SIGKILL) while it has {still_open} open orders and 1 order "
                "in flight"
            )
            bot.kill()
            stop(bot, grace=10)
            print(f"the exchange trades on for {DOWN_SECONDS:g} s without the bot; restarting it")
            time.sleep(DOWN_SECONDS)
            bot = start_bot(url, database_url, "restart")
            for _ in relay(bot):
                pass
            if bot.wait() != 0:
                raise SystemExit(f"the bot failed (exit status {bot.returncode})")
        except KeyboardInterrupt:
            interrupted = True  # the children had their own Ctrl-C: let them finish
            raise
        finally:
            for child in (bot, exchange):
                if child is not None:
                    stop(child, grace=5 if interrupted else 0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: $QUANTFLOW_DATABASE_URL or ./dev.sqlite3")
    parser.add_argument("--bot", choices=["trade", "restart"], help=argparse.SUPPRESS)
    parser.add_argument("--venue", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        if args.bot:
            asyncio.run(bot(args.venue, args.database_url, restarted=args.bot == "restart"))
        else:
            sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            run(args.database_url)
    except KeyboardInterrupt:
        # The journal was closed on the way out; the next start reconciles whatever was left.
        print("interrupted" if args.bot else "interrupted: the bot and the exchange are stopped")
        sys.exit(128 + signal.SIGINT)
