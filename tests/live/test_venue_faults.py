"""CcxtVenue through a fault-injecting proxy in front of the real paper exchange: every call
ends with the right answer or VenueUnavailable, and no order is ever sent twice."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from quantflow_async.errors import VenueUnavailable
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.paper.config import PaperExchangeConfig
from quantflow_async.live.paper.server import PaperExchangeServer
from quantflow_async.live.venue import NewOrder, VenueOrder
from quantflow_async.live.venue_retry import RetryPolicy
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.venues import SYMBOL, orders_on_exchange, rising_bars, sent_to_exchange

RATES = {
    Fault.DROP_BEFORE: 0.06,
    Fault.DROP_AFTER: 0.06,
    Fault.HTTP_500: 0.03,
    Fault.HTTP_502: 0.03,
    Fault.HTTP_503: 0.03,
    Fault.HTTP_429: 0.03,
    Fault.HTTP_418: 0.02,
    Fault.HOLD: 0.03,
}
POLICY = RetryPolicy(
    attempts=10, first_delay=0.01, max_delay=0.08, deadline=3.0, rate_limit_delay=0.02
)
CLIENT_TIMEOUT = 0.4
WORKERS = 8
ROUNDS = 8


@pytest.fixture
async def paper(tmp_path: Path) -> AsyncIterator[PaperExchangeServer]:
    config = PaperExchangeConfig.of(
        data=rising_bars(tmp_path / "bars.csv"),
        symbol="BTCUSDT",
        state=tmp_path / "paper.sqlite3",
        bar_seconds=30.0,
        cash="10000000",
    )
    server = PaperExchangeServer.open(config)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


async def test_faults_end_in_an_answer_or_unavailable_and_no_order_is_doubled(
    paper: PaperExchangeServer, tmp_path: Path
) -> None:
    created: dict[str, VenueOrder] = {}
    unsettled: list[str] = []
    outcomes: Counter[str] = Counter()

    async def worker(venue: CcxtVenue, n: int, rng: random.Random) -> None:
        for round_ in range(ROUNDS):
            market_id = f"m-{n}-{round_}"
            limit_id = f"l-{n}-{round_}"
            for order in (
                NewOrder(market_id, SYMBOL, rng.choice(("buy", "sell")), "market", Decimal("0.01")),
                NewOrder(
                    limit_id, SYMBOL, "buy", "limit", Decimal("0.02"), limit_price=Decimal("50.5")
                ),
            ):
                try:
                    result = await venue.create_order(order)
                except VenueUnavailable:
                    unsettled.append(order.client_order_id)
                    outcomes["create unavailable"] += 1
                    continue
                outcomes["create"] += 1
                assert result.client_order_id == order.client_order_id
                assert result.quantity == order.quantity
                if order.type == "market":
                    assert result.status == "filled"
                    assert result.filled_quantity == order.quantity
                else:
                    assert result.status == "open"
                    assert result.limit_price == Decimal("50.5")
                created[order.client_order_id] = result
            for call, check in (
                (
                    venue.fetch_order(SYMBOL, client_order_id=market_id),
                    lambda o: o is None or o.status == "filled",
                ),
                (
                    venue.fetch_open_orders(SYMBOL),
                    lambda orders: all(o.status == "open" for o in orders),
                ),
                (venue.fetch_balance(), lambda b: b["USDT"].total > 0),
                (venue.fetch_my_trades(SYMBOL), lambda trades: all(t.price > 0 for t in trades)),
            ):
                try:
                    assert check(await call)  # type: ignore[no-untyped-call]
                    outcomes["fetch"] += 1
                except VenueUnavailable:
                    outcomes["fetch unavailable"] += 1
            if limit_id in created:
                try:
                    cancelled = await venue.cancel_order(SYMBOL, client_order_id=limit_id)
                    assert cancelled.client_order_id == limit_id
                    assert cancelled.status == "cancelled"
                    outcomes["cancel"] += 1
                except VenueUnavailable:
                    outcomes["cancel unavailable"] += 1

    async with FaultProxy(
        paper.port, seed=20240601, rates=RATES, hold=CLIENT_TIMEOUT + 0.3
    ) as proxy:
        venues = [
            CcxtVenue.connect(
                proxy.url, VenueCredentials.placeholder(), policy=POLICY, timeout=CLIENT_TIMEOUT
            )
            for _ in range(WORKERS)
        ]
        try:
            async with asyncio.TaskGroup() as group:
                for n, venue in enumerate(venues):
                    group.create_task(worker(venue, n, random.Random(n)))
        finally:
            for venue in venues:
                await venue.aclose()
        injected = dict(proxy.injected)
        sent = sent_to_exchange(proxy)
        requests = sum(proxy.injected.values())
    assert outcomes["create"] + outcomes["fetch"] + outcomes["cancel"] >= 300, outcomes

    on_exchange = orders_on_exchange(paper.config.state)
    assert all(on_exchange[cid] == 1 for cid in created), "a reported order is missing"
    assert max(on_exchange.values()) == 1
    assert max(sent.values()) == 1, f"orders sent twice: {[c for c, n in sent.items() if n > 1]}"
    assert set(on_exchange) <= set(created) | set(unsettled)
    assert requests >= 300, injected
    assert sum(n for fault, n in injected.items() if fault is not Fault.PASS) >= 60, injected
    assert all(injected.get(fault, 0) > 0 for fault in RATES), injected
