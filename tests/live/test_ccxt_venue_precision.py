"""CcxtVenue and the market's precision: ccxt truncates an amount to the lot step and rounds a
price to the tick without a word, so an order the market cannot hold exactly is refused
before anything is sent, naming the value and the step; one that fits is sent unchanged.

Sent as asked, 0.123456789 would reach the venue as 0.12345678 and the journal would wait
forever for the last 0.000000009.
"""

from __future__ import annotations

import decimal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quantflow_async import Database
from quantflow_async.errors import VenueRejected
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.order_flow import send_order
from quantflow_async.live.orders import OrderRequest
from quantflow_async.live.paper.server import PaperExchangeServer
from quantflow_async.live.venue import NewOrder
from tests.support.fault_proxy import FaultProxy
from tests.support.paper import ManualClock, paper_exchange, write_bars
from tests.support.venues import SYMBOL, orders_on_exchange, sent_to_exchange

BARS = [
    (100.0, 101.5, 99.25, 101.0),  # two decimals: tick 0.01; the lot step is 0.00000001
    (101.0, 102.0, 100.5, 101.75),
]


@dataclass
class Paper:
    server: PaperExchangeServer
    proxy: FaultProxy
    venue: CcxtVenue

    def sent(self) -> int:
        """How many orders the exchange holds: as many as order requests reached it."""
        held = sum(orders_on_exchange(self.server.config.state).values())
        assert held == sum(sent_to_exchange(self.proxy).values())
        return held


@pytest.fixture
async def paper(tmp_path: Path) -> AsyncIterator[Paper]:
    clock = ManualClock(bar_seconds=60.0)
    data = write_bars(tmp_path / "bars.csv", BARS)
    async with (
        paper_exchange(tmp_path, data, clock=clock, cash="1000000") as server,
        FaultProxy(server.port, seed=1, rates={}) as proxy,
        CcxtVenue.connect(proxy.url, VenueCredentials.placeholder(), name="paper") as venue,
    ):
        yield Paper(server, proxy, venue)


async def test_a_quantity_finer_than_the_lot_step_is_refused_before_anything_is_sent(
    paper: Paper,
) -> None:
    order = NewOrder("fine-1", SYMBOL, "buy", "market", Decimal("0.123456789"))
    with pytest.raises(VenueRejected) as caught:
        await paper.venue.create_order(order)
    assert str(caught.value) == (
        "paper: create_order client id 'fine-1' refused before sending: quantity 0.123456789 "
        "is finer than BTC/USDT's amount step 0.00000001 (ccxt would send 0.12345678)"
    )
    assert paper.sent() == 0


async def test_a_quantity_below_one_step_is_refused_naming_the_step(paper: Paper) -> None:
    order = NewOrder("dust-1", SYMBOL, "buy", "market", Decimal("0.000000001"))
    with pytest.raises(VenueRejected) as caught:
        await paper.venue.create_order(order)
    assert str(caught.value).endswith(
        "quantity 0.000000001 is finer than BTC/USDT's amount step 0.00000001 (ccxt would send 0)"
    )
    assert paper.sent() == 0


@pytest.mark.parametrize(
    ("order", "named"),
    [
        (
            NewOrder("limit-1", SYMBOL, "buy", "limit", Decimal(1), limit_price=Decimal("99.005")),
            "limit price 99.005 is finer than BTC/USDT's price step 0.01",
        ),
        (
            NewOrder("stop-1", SYMBOL, "buy", "stop", Decimal(1), stop_price=Decimal("104.001")),
            "stop price 104.001 is finer than BTC/USDT's price step 0.01",
        ),
    ],
    ids=["limit", "stop"],
)
async def test_a_price_finer_than_the_tick_is_refused_before_anything_is_sent(
    paper: Paper, order: NewOrder, named: str
) -> None:
    with pytest.raises(VenueRejected, match=named):
        await paper.venue.create_order(order)
    assert paper.sent() == 0


async def test_a_quantity_and_price_at_the_step_are_sent_unchanged(paper: Paper) -> None:
    bought = await paper.venue.create_order(
        NewOrder("step-1", SYMBOL, "buy", "market", Decimal("0.123456780"))
    )
    resting = await paper.venue.create_order(
        NewOrder("step-2", SYMBOL, "buy", "limit", Decimal("0.5"), limit_price=Decimal("99.01"))
    )
    assert (bought.status, bought.quantity, bought.filled_quantity) == (
        "filled",
        Decimal("0.12345678"),
        Decimal("0.12345678"),
    )
    assert (resting.status, resting.quantity, resting.limit_price) == (
        "open",
        Decimal("0.5"),
        Decimal("99.01"),
    )
    assert paper.sent() == 2


async def test_send_order_journals_a_too_fine_quantity_as_rejected_with_the_reason(
    db: Database, strategy_id: int, paper: Paper
) -> None:
    request = OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal("2.000000005"))
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        order = await send_order(journal, paper.venue, request)
        assert (order.status, order.filled_quantity) == ("rejected", Decimal(0))
    events = await db.orders.events(order.id)
    assert [event.kind for event in events] == ["intent", "submitted", "rejected"]
    assert events[-1].reason is not None
    assert "quantity 2.000000005 is finer than BTCUSDT's amount step 0.00000001" in (
        events[-1].reason
    )
    assert paper.sent() == 0


async def test_ccxt_leaves_the_callers_decimal_context_as_it_was(paper: Paper) -> None:
    """ccxt sets ROUND_HALF_UP and traps Underflow on the context it finds: not on ours."""
    context = decimal.getcontext()
    before = (context.rounding, dict(context.traps))
    await paper.venue.create_order(
        NewOrder(
            client_order_id="ctx-1", symbol=SYMBOL, side="buy", type="limit",
            quantity=Decimal("0.5"), limit_price=Decimal("100.50"),
        )
    )  # fmt: skip
    await paper.venue.fetch_open_orders(SYMBOL)
    context = decimal.getcontext()
    assert (context.rounding, dict(context.traps)) == before


async def test_an_order_sent_or_cancelled_leaves_the_callers_decimal_context_as_it_was(
    paper: Paper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call to ccxt runs in a decimal context of its own, the order's send and cancel
    too: what ccxt sets there stays there."""
    exchange = paper.venue._exchange
    for name in ("create_order", "cancel_order"):
        sent = getattr(exchange, name)

        async def changing_the_context(*args: object, _sent: Any = sent) -> Any:
            decimal.getcontext().rounding = decimal.ROUND_UP
            decimal.getcontext().traps[decimal.Underflow] = True
            return await _sent(*args)

        monkeypatch.setattr(exchange, name, changing_the_context)
    context = decimal.getcontext()
    before = (context.rounding, dict(context.traps))
    order = await paper.venue.create_order(
        NewOrder(
            client_order_id="ctx-2", symbol=SYMBOL, side="buy", type="limit",
            quantity=Decimal("0.5"), limit_price=Decimal("99.50"),
        )
    )  # fmt: skip
    assert (decimal.getcontext().rounding, dict(decimal.getcontext().traps)) == before
    await paper.venue.cancel_order(SYMBOL, venue_order_id=order.venue_order_id)
    assert (decimal.getcontext().rounding, dict(decimal.getcontext().traps)) == before
