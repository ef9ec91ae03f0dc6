"""A venue order id belongs to one order on its venue, across strategies and sessions: an
acknowledgement that would give it to a second order is refused and kept, and the journal goes
on (the store's unique rule is never what stops it)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quantflow_async import Database
from quantflow_async.errors import OrderEventRefused
from quantflow_async.live.orders import OrderRequest

BUY = OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal(1))


async def test_a_venue_id_of_another_strategys_order_is_refused_and_the_journal_goes_on(
    db: Database, strategy_id: int
) -> None:
    other = await db.strategies.create(name="another")
    async with db.journal(strategy_id=other.id, venue="paper") as journal:
        earlier = await journal.intend(BUY)
        await journal.acknowledged(earlier.client_order_id, "7", wait=True)

    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        order = await journal.intend(BUY)
        with pytest.raises(OrderEventRefused, match="'7'"):
            await journal.acknowledged(order.client_order_id, "7", wait=True)
        await journal.acknowledged(order.client_order_id, "8", wait=True)  # still working
        assert journal.stats().refused == 1

    stored = await db.orders.get_by_client_order_id(order.client_order_id)
    assert (stored.status, stored.venue_order_id) == ("open", "8")
    kinds = [(event.kind, event.reason) for event in await db.orders.events(stored.id)]
    assert ("refused", kinds[-2][1]) == kinds[-2] and "'7'" in (kinds[-2][1] or "")


async def test_a_venue_id_of_a_finished_order_of_an_earlier_session_is_refused(
    db: Database, strategy_id: int
) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        earlier = await journal.intend(BUY)
        await journal.acknowledged(earlier.client_order_id, "1")
        await journal.cancelled(earlier.client_order_id, wait=True)

    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        await journal.restore()  # the cancelled order is final: not in memory
        order = await journal.intend(BUY)
        with pytest.raises(OrderEventRefused, match="'1'"):
            await journal.acknowledged(order.client_order_id, "1", wait=True)
        await journal.flush()
