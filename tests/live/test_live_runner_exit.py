"""The live runner stopping with `cancel_on_exit`: the orders it cancels, and a venue that
cannot cancel them said in the error, since orders left open keep trading without the bot."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from quantflow_async import Database
from quantflow_async.backtest.strategies import strategy_class
from quantflow_async.errors import VenueError, VenueUnavailable
from quantflow_async.live.orders import OrderRequest
from quantflow_async.live.runner import LiveOptions, run_live
from quantflow_async.live.venue import NewOrder
from tests.support.memory_venue import MemoryVenue

OPTIONS = LiveOptions(symbol="BTCUSDT", cancel_on_exit=True)


async def a_resting_order(db: Database, strategy_id: int, venue: MemoryVenue) -> str:
    """A limit buy journaled and acknowledged, open at the venue; its client order id."""
    async with db.journal(strategy_id=strategy_id, venue=venue.name) as journal:
        order = await journal.intend(
            OrderRequest(
                symbol="BTCUSDT", side="buy", quantity=Decimal(1), type="limit",
                limit_price=Decimal(100),
            )
        )  # fmt: skip
        cid = order.client_order_id
        await journal.submitted(cid)
        answer = await venue.create_order(
            NewOrder(
                client_order_id=cid, symbol="BTCUSDT", side="buy", type="limit",
                quantity=Decimal(1), limit_price=Decimal(100),
            )
        )  # fmt: skip
        await journal.acknowledged(cid, answer.venue_order_id)
    return cid


async def stopped_at_once(db: Database, strategy_id: int, venue: MemoryVenue) -> int:
    stop = anyio.Event()
    stop.set()  # it restores and reconciles, then stops
    report = await run_live(
        db, strategy_class("sma_cross"), None, venue, strategy_id=strategy_id, options=OPTIONS,
        stop=stop,
    )  # fmt: skip
    return report.orders_cancelled_on_exit


async def test_stopping_cancels_our_open_orders(db: Database, strategy_id: int) -> None:
    venue = MemoryVenue()
    cid = await a_resting_order(db, strategy_id, venue)
    assert await stopped_at_once(db, strategy_id, venue) == 1
    assert venue.order_by_client_id(cid).status == "cancelled"


async def test_a_venue_that_cannot_cancel_on_exit_says_orders_may_still_be_open(
    db: Database, strategy_id: int
) -> None:
    venue = MemoryVenue()
    cid = await a_resting_order(db, strategy_id, venue)
    # Reconciling reads the open orders once; the look before cancelling fails.
    venue.fail("fetch_open_orders", VenueUnavailable("memory", "connection refused"), after=1)
    with pytest.raises(VenueError) as raised:
        await stopped_at_once(db, strategy_id, venue)
    message = str(raised.value)
    assert "cancelling our open BTCUSDT orders on exit failed" in message
    assert "some may still be open on the venue" in message
    assert "connection refused" in message
    assert isinstance(raised.value.__cause__, VenueUnavailable)
    assert venue.order_by_client_id(cid).status == "open"
