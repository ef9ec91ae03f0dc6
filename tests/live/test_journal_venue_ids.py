"""A venue order id belongs to one order on its venue, across strategies and sessions: an
acknowledgement that would give it to a second order is refused and kept, and the journal goes
on (the store's unique rule is never what stops it)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quantflow_async import Database
from quantflow_async.errors import OrderEventRefused
from quantflow_async.live.orders import OrderRequest

from .journal_support import trade

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


async def taken_elsewhere(db: Database, venue_order_id: str) -> None:
    """Another strategy's order on "paper" holds `venue_order_id`."""
    other = await db.strategies.create(name=f"holder of {venue_order_id}")
    async with db.journal(strategy_id=other.id, venue="paper") as journal:
        held = await journal.intend(BUY)
        await journal.acknowledged(held.client_order_id, venue_order_id, wait=True)


async def test_a_refused_venue_id_without_waiting_leaves_the_order_unknown_for_reconciling(
    db: Database, strategy_id: int
) -> None:
    await taken_elsewhere(db, "7")
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        order = await journal.intend(BUY)
        await journal.acknowledged(order.client_order_id, "7")  # found out at its commit
        await journal.flush()
        assert journal.stats().refused == 1
        remembered = journal.order(order.client_order_id)
        assert remembered is not None
        assert (remembered.status, remembered.venue_order_id) == ("unknown", None)
        assert journal.client_order_id_of("7") is None
        await journal.acknowledged(order.client_order_id, "8", wait=True)  # reconciled

    stored = await db.orders.get_by_client_order_id(order.client_order_id)
    assert (stored.status, stored.venue_order_id) == ("open", "8")
    events = await db.orders.events(stored.id)
    refused = [event for event in events if event.kind == "refused"]
    assert len(refused) == 1 and refused[0].status_after == "unknown"
    assert [event.kind for event in events] == ["intent", "refused", "acknowledged"]


async def test_what_was_recorded_after_a_refused_venue_id_is_kept(
    db: Database, strategy_id: int
) -> None:
    """A fill the bot recorded before the refusal came back is a fact: stored, with the
    position it moved; the order is unknown, without the venue id, until reconciled."""
    await taken_elsewhere(db, "7")
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        order = await journal.intend(BUY)
        await journal.acknowledged(order.client_order_id, "7")
        fill = trade("7", "1", "0.25", "100")
        await journal.filled(fill, client_order_id=order.client_order_id)
        await journal.flush()
        remembered = journal.order(order.client_order_id)
        assert remembered is not None
        assert (remembered.status, remembered.filled_quantity) == ("unknown", Decimal("0.25"))

    stored = await db.orders.get_by_client_order_id(order.client_order_id)
    assert (stored.status, stored.venue_order_id) == ("unknown", None)
    assert stored.filled_quantity == Decimal("0.25")
    mine = await db.orders.positions(strategy_id=strategy_id, venue="paper")
    assert [(p.symbol, p.quantity) for p in mine] == [("BTCUSDT", Decimal("0.25"))]
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        restored = await journal.restore()
        assert [o.client_order_id for o in restored.in_doubt + restored.open_orders] == [
            order.client_order_id
        ]


async def test_two_refused_venue_ids_in_one_batch_leave_the_rest_of_it_stored(
    db: Database, strategy_id: int
) -> None:
    await taken_elsewhere(db, "7")
    await taken_elsewhere(db, "9")
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        orders = [await journal.intend(BUY) for _ in range(4)]
        for order, venue_id in zip(orders, ["7", "70", "9", "90"], strict=True):
            await journal.acknowledged(order.client_order_id, venue_id)
        await journal.flush()
        assert journal.stats().refused == 2

    found = [await db.orders.get_by_client_order_id(o.client_order_id) for o in orders]
    assert [(o.status, o.venue_order_id) for o in found] == [
        ("unknown", None), ("open", "70"), ("unknown", None), ("open", "90"),
    ]  # fmt: skip
