"""CcxtVenue where the venue and the bot disagree about what happened: a send that landed but
whose reply was lost, a client id the venue already holds, an answer about another order, a
cancel that arrives after the fill, and a trade history exactly one page long.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from quantflow_async.errors import MalformedVenueAnswer, VenueRejected
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.paper.server import PaperExchangeServer
from quantflow_async.live.venue import NewOrder
from quantflow_async.live.venue_retry import RetryPolicy
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.paper import ManualClock, ccxt_binance, paper_exchange, write_bars
from tests.support.venues import SYMBOL, orders_on_exchange, sent_to_exchange

BARS = [
    (100.0, 101.5, 99.25, 101.0),
    (101.0, 102.0, 100.5, 101.75),
    (101.75, 103.0, 98.5, 99.0),  # dips to 98.5: a buy limit at 99 fills when this bar closes
    (99.0, 106.0, 99.0, 105.5),
]
POLICY = RetryPolicy(attempts=4, first_delay=0.01, max_delay=0.05, deadline=5.0)
CLIENT_TIMEOUT = 0.3
BUY = NewOrder("buy-1", SYMBOL, "buy", "market", Decimal("0.5"))


@dataclass
class Paper:
    server: PaperExchangeServer
    clock: ManualClock
    proxy: FaultProxy

    def venue(self) -> CcxtVenue:
        """A fresh venue through the proxy, as a bot restarted with no memory would have."""
        return CcxtVenue.connect(
            self.proxy.url, VenueCredentials.placeholder(), policy=POLICY, timeout=CLIENT_TIMEOUT
        )

    def held(self) -> int:
        """How many times the exchange holds BUY's client id."""
        return orders_on_exchange(self.server.config.state)[BUY.client_order_id]


@pytest.fixture
async def paper(tmp_path: Path) -> AsyncIterator[Paper]:
    clock = ManualClock(bar_seconds=60.0)
    data = write_bars(tmp_path / "bars.csv", BARS)
    async with paper_exchange(tmp_path, data, clock=clock, cash="1000000") as server:
        async with FaultProxy(server.port, seed=7, hold=CLIENT_TIMEOUT + 0.4) as proxy:
            yield Paper(server, clock, proxy)


async def test_a_create_that_landed_but_timed_out_returns_the_order_once(paper: Paper) -> None:
    paper.proxy.script("POST /api/v3/order", Fault.HOLD)
    async with paper.venue() as venue:
        order = await venue.create_order(BUY)
    assert paper.proxy.injected[Fault.HOLD] == 1
    assert (order.client_order_id, order.status, order.filled_quantity) == (
        "buy-1",
        "filled",
        Decimal("0.5"),
    )
    assert sent_to_exchange(paper.proxy)["buy-1"] == 1
    assert paper.held() == 1


async def test_a_duplicate_refusal_returns_the_order_already_there(paper: Paper) -> None:
    async with paper.venue() as first:
        placed = await first.create_order(BUY)
    async with paper.venue() as second:
        again = await second.create_order(BUY)
    assert sent_to_exchange(paper.proxy)["buy-1"] == 2  # the second was refused as a duplicate
    assert again.venue_order_id == placed.venue_order_id
    assert paper.held() == 1


async def test_a_client_id_held_by_another_order_is_refused_not_taken_for_ours(
    paper: Paper,
) -> None:
    async with paper.venue() as first:
        await first.create_order(BUY)
    other = NewOrder("buy-1", SYMBOL, "sell", "limit", Decimal("2"), limit_price=Decimal("150"))
    async with paper.venue() as second:
        with pytest.raises(VenueRejected, match="buy-1"):
            await second.create_order(other)
    assert paper.held() == 1


def _rename_client_id(path: str, body: bytes) -> bytes | None:
    """The order answers name buy-1 someone-else: a venue answering about another order."""
    answer = json.loads(body) if path == "/api/v3/order" else None
    if not isinstance(answer, dict) or answer.get("clientOrderId") != "buy-1":
        return None
    return json.dumps({**answer, "clientOrderId": "someone-else"}).encode()


async def test_an_order_fetched_by_client_id_under_another_id_is_malformed(
    paper: Paper,
) -> None:
    async with paper.venue() as venue:
        await venue.create_order(BUY)
        paper.proxy.rewrite = _rename_client_id
        with pytest.raises(MalformedVenueAnswer) as caught:
            await venue.fetch_order(SYMBOL, client_order_id="buy-1")
    assert caught.value.field == "client_order_id"
    assert "someone-else" in str(caught.value)


async def test_a_lost_create_reply_is_not_settled_by_an_answer_about_another_order(
    paper: Paper,
) -> None:
    paper.proxy.script("POST /api/v3/order", Fault.DROP_AFTER)
    paper.proxy.rewrite = _rename_client_id
    async with paper.venue() as venue:
        with pytest.raises(MalformedVenueAnswer) as caught:
            await venue.create_order(BUY)
    assert caught.value.field == "client_order_id"
    assert sent_to_exchange(paper.proxy)["buy-1"] == 1
    assert paper.held() == 1


async def test_a_cancel_that_arrives_after_the_fill_returns_the_filled_order(
    paper: Paper,
) -> None:
    rest = NewOrder("rest-1", SYMBOL, "buy", "limit", Decimal("1"), limit_price=Decimal("99"))
    async with paper.venue() as venue:
        placed = await venue.create_order(rest)
        assert placed.status == "open"
        paper.clock.to_bar(3)  # bar 2 closed at 98.5 low: the limit filled before the cancel
        answer = await venue.cancel_order(SYMBOL, client_order_id="rest-1")
    calls = [line.split(" ")[0] for line, _ in paper.proxy.forwarded if "/api/v3/order" in line]
    assert calls == ["POST", "DELETE", "GET"]  # refused as unknown (-2011), then looked up
    assert (answer.status, answer.filled_quantity, answer.average_price) == (
        "filled",
        Decimal("1"),
        Decimal("99"),
    )
    assert (answer.venue_order_id, answer.client_order_id) == (placed.venue_order_id, "rest-1")


async def test_a_cancel_by_venue_id_after_the_fill_returns_the_filled_order(
    paper: Paper,
) -> None:
    rest = NewOrder("rest-2", SYMBOL, "buy", "limit", Decimal("1"), limit_price=Decimal("99"))
    async with paper.venue() as venue:
        placed = await venue.create_order(rest)
        paper.clock.to_bar(3)
        answer = await venue.cancel_order(SYMBOL, venue_order_id=placed.venue_order_id)
    assert (answer.status, answer.client_order_id) == ("filled", "rest-2")


async def test_exactly_one_page_of_trades_is_read_whole_in_two_requests(
    paper: Paper,
) -> None:
    async with ccxt_binance(paper.server.url) as client:
        for n in range(1000):
            await client.create_order(
                SYMBOL, "market", "buy", 0.01, params={"clientOrderId": f"t-{n}"}
            )
    async with paper.venue() as venue:
        trades = await venue.fetch_my_trades(SYMBOL)
        pages = [line for line, _ in paper.proxy.forwarded if "/api/v3/myTrades" in line]
        later = await venue.fetch_my_trades(SYMBOL, after_trade_id=trades[0].trade_id)
    assert len(trades) == 1000 == len({t.trade_id for t in trades})
    assert [int(t.trade_id) for t in trades] == sorted(int(t.trade_id) for t in trades)
    assert len(pages) == 2  # the full page, then the empty one that says it was the last
    assert len(later) == 999 and later[0].trade_id != trades[0].trade_id
