"""A bot the crash rounds kill with SIGKILL, forked from a zygote that imported everything once.

    python -m tests.live.crash_bot

The zygote reads one JSON round per line on stdin, forks a bot for it, prints
`started PID`, waits for the bot and prints `ended PID STATUS`. A bot restores and reconciles
its journal, then places, fills and cancels orders on the paper exchange until it is killed:
by the test at a random moment, or by itself at a chosen step (`kill_at`), for example right
after the exchange answered an order and before the journal heard of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantflow_async import Database, Settings
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.journal import OrderJournal
from quantflow_async.live.order_flow import record_answer, send_order, sync_fills
from quantflow_async.live.orders import OrderRequest
from quantflow_async.live.venue import AssetBalance, Bar, NewOrder, VenueOrder, VenueTrade
from quantflow_async.live.venue_retry import RetryPolicy

SYMBOL = "BTCUSDT"
VENUE = "paper"
KILL_POINTS = (
    "before_send",  # the intent is durable, "submitted" may not be: nothing reached the venue
    "in_send",  # the request may or may not have reached the venue
    "after_send",  # the venue has the order; the journal never heard its answer
    "after_trades",  # the venue reported fills the journal never recorded
    "before_cancel",  # cancel requested in the journal, not sent
    "after_cancel",  # cancelled at the venue, not in the journal
    "in_reconcile",  # the restart's own reconciliation, half done
)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillingVenue:
    """The paper exchange's venue, which kills this process at the n-th call of one kind."""

    def __init__(self, venue: CcxtVenue, kill_at: str | None, nth: int, rng: random.Random):
        self.name = venue.name
        self._venue = venue
        self._kill_at = kill_at
        self._left = nth
        self._rng = rng

    def _due(self, point: str) -> bool:
        if point != self._kill_at:
            return False
        self._left -= 1
        return self._left <= 0

    async def create_order(self, order: NewOrder) -> VenueOrder:
        if self._due("before_send"):
            die()
        if self._due("in_send"):
            sending = asyncio.ensure_future(self._venue.create_order(order))
            await asyncio.sleep(self._rng.uniform(0, 0.004))
            die()
            return await sending
        answer = await self._venue.create_order(order)
        if self._due("after_send"):
            die()
        return answer

    async def cancel_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder:
        if self._due("before_cancel"):
            die()
        answer = await self._venue.cancel_order(
            symbol, venue_order_id=venue_order_id, client_order_id=client_order_id
        )
        if self._due("after_cancel"):
            die()
        return answer

    async def fetch_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder | None:
        return await self._venue.fetch_order(
            symbol, venue_order_id=venue_order_id, client_order_id=client_order_id
        )

    async def fetch_open_orders(self, symbol: str) -> Sequence[VenueOrder]:
        return await self._venue.fetch_open_orders(symbol)

    async def fetch_my_trades(
        self, symbol: str, *, since: datetime | None = None, after_trade_id: str | None = None
    ) -> Sequence[VenueTrade]:
        trades = await self._venue.fetch_my_trades(
            symbol, since=since, after_trade_id=after_trade_id
        )
        if trades and self._due("after_trades"):
            die()
        return trades

    async def fetch_balance(self) -> Mapping[str, AssetBalance]:
        if self._due("in_reconcile"):
            die()
        return await self._venue.fetch_balance()

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> Sequence[Bar]:
        return await self._venue.fetch_ohlcv(symbol, timeframe, since=since, limit=limit)

    async def aclose(self) -> None:
        await self._venue.aclose()


async def trade(
    journal: OrderJournal, venue: KillingVenue, rng: random.Random, actions: int
) -> None:
    for _ in range(actions):
        bars = await venue.fetch_ohlcv(SYMBOL, "1m", limit=1)
        price = bars[-1].open
        roll = rng.random()
        if roll < 0.45:
            side = rng.choice(("buy", "sell"))
            await send_order(journal, venue, _request(side, "market", rng))
        elif roll < 0.8:
            side = rng.choice(("buy", "sell"))
            # Far from the price it rests; near it, it may fill on a later bar.
            away = Decimal(rng.choice(("0.5", "0.999", "1.001", "1.5")))
            limit = (price * (away if side == "buy" else 2 - away)).quantize(Decimal("0.01"))
            await send_order(journal, venue, _request(side, "limit", rng, limit))
        else:
            open_orders = (await journal.restore()).open_orders
            if open_orders:
                order = rng.choice(list(open_orders))
                await journal.cancel_requested(order.client_order_id)
                answer = await venue.cancel_order(SYMBOL, client_order_id=order.client_order_id)
                await record_answer(journal, venue, order.client_order_id, answer)
        await sync_fills(journal, venue, SYMBOL)


def _request(
    side: str, kind: str, rng: random.Random, limit: Decimal | None = None
) -> OrderRequest:
    return OrderRequest(
        symbol=SYMBOL,
        side=side,  # type: ignore[arg-type]
        quantity=Decimal(rng.randint(1, 3)),
        type=kind,  # type: ignore[arg-type]
        limit_price=limit,
    )


async def bot(spec: dict[str, Any]) -> None:
    rng = random.Random(spec["seed"])
    policy = RetryPolicy(attempts=20, first_delay=0.01, max_delay=0.2, deadline=10.0)
    inner = CcxtVenue.connect(
        spec["url"], VenueCredentials.placeholder(), name=VENUE, policy=policy
    )
    venue = KillingVenue(inner, spec.get("kill_at"), spec.get("nth", 1), rng)
    try:
        settings = Settings(database_url=spec["database_url"])
        async with Database(settings=settings) as db:
            async with db.journal(strategy_id=spec["strategy_id"], venue=VENUE) as journal:
                await journal.restore()
                await journal.reconcile(venue, symbols=(SYMBOL,))
                await trade(journal, venue, rng, spec["actions"])
    finally:
        await venue.aclose()


def zygote() -> None:
    for line in sys.stdin:
        spec = json.loads(line)
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                asyncio.run(bot(spec))
            except BaseException as exc:  # noqa: BLE001 - reported to the test, then exit
                print(f"bot failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                status = 1
            finally:
                os._exit(status)
        print(f"started {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"ended {pid} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    zygote()
