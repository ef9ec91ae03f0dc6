"""Fills through the journal: exact quantities and averages, duplicates counted once, trades
stored with their order, and positions moved in the same transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import text

from quantflow_async import Database
from quantflow_async.errors import OrderEventRefused
from quantflow_async.live.journal import OrderJournal
from quantflow_async.live.orders import OrderRequest

from .journal_support import open_order, trade


@pytest.fixture
async def journal(db: Database, strategy_id: int) -> AsyncIterator[OrderJournal]:
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        yield journal


async def test_fills_sum_exactly_and_average_by_quantity(
    db: Database, journal: OrderJournal
) -> None:
    order = await open_order(journal, "0.3")
    await journal.filled(trade(order, "1", "0.1", "100.01"))
    await journal.filled(trade(order, "2", "0.2", "100.02"), wait=True)
    stored = await db.orders.get(order.id)
    assert stored.status == "filled"
    assert stored.filled_quantity == Decimal("0.3")
    # (0.1 x 100.01 + 0.2 x 100.02) / 0.3, exact to 18 places.
    assert stored.average_price == Decimal("100.016666666666666667")


async def test_a_fill_lands_in_trades_with_its_order(db: Database, journal: OrderJournal) -> None:
    order = await open_order(journal)
    await journal.filled(trade(order, "5", "1", "250", fee="0.25"), wait=True)
    (stored,) = await db.trades.list()
    assert stored.external_id == "paper:5"
    assert (stored.quantity, stored.price, stored.fee) == (1, 250, Decimal("0.25"))
    assert stored.metadata is not None
    assert stored.metadata["client_order_id"] == order.client_order_id
    async with db.engine.connect() as conn:
        linked = await conn.scalar(text("SELECT order_id FROM trades"))
    assert linked == order.id


async def test_a_redelivered_fill_is_counted_once(db: Database, journal: OrderJournal) -> None:
    order = await open_order(journal, "2")
    assert await journal.filled(trade(order, "1", "1"))
    assert not await journal.filled(trade(order, "1", "1"))
    await journal.flush()
    assert (await db.orders.get(order.id)).filled_quantity == 1
    assert await db.trades.count() == 1
    assert journal.stats().duplicates == 1


async def test_a_redelivered_fill_is_recognised_after_a_restart(
    db: Database, strategy_id: int
) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper") as first:
        order = await open_order(first, "2")
        await first.filled(trade(order, "1", "1"))
    async with db.journal(strategy_id=strategy_id, venue="paper") as second:
        assert not await second.filled(trade(order, "1", "1"))
        assert await second.filled(trade(order, "2", "1"))
        assert second.stats().duplicates == 1
    stored = await db.orders.get(order.id)
    assert (stored.status, stored.filled_quantity) == ("filled", 2)
    assert await db.trades.count() == 2


async def test_a_fill_of_a_filled_order_is_also_recognised_after_a_restart(
    db: Database, strategy_id: int
) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper") as first:
        order = await open_order(first)
        await first.filled(trade(order, "1", "1"))
    async with db.journal(strategy_id=strategy_id, venue="paper") as second:
        assert not await second.filled(trade(order, "1", "1"))


REFUSED_FILLS = {
    "more than ordered": ("1.5", "100"),
    "zero quantity": ("0", "100"),
    "zero price": ("1", "0"),
}


@pytest.mark.parametrize(("quantity", "price"), REFUSED_FILLS.values(), ids=REFUSED_FILLS.keys())
async def test_an_impossible_fill_is_refused_and_moves_nothing(
    db: Database, journal: OrderJournal, quantity: str, price: str
) -> None:
    order = await open_order(journal)
    with pytest.raises(OrderEventRefused):
        await journal.filled(trade(order, "1", quantity, price))
    await journal.flush()
    assert (await db.orders.get(order.id)).filled_quantity == 0
    assert await db.trades.count() == 0
    assert await db.orders.positions() == []
    assert (await db.orders.events(order.id))[-1].kind == "refused"


async def test_a_fill_on_a_cancelled_order_is_refused(db: Database, journal: OrderJournal) -> None:
    order = await open_order(journal)
    await journal.cancelled(order.client_order_id)
    with pytest.raises(OrderEventRefused, match="cancelled"):
        await journal.filled(trade(order, "1", "1"))
    # The refused trade id stays free: the fact itself was not stored.
    await journal.flush()
    assert await db.trades.count() == 0


@pytest.mark.parametrize("end", ["cancelled", "expired"])
async def test_a_late_fill_of_an_order_cancelled_with_something_left_is_recorded(
    db: Database, journal: OrderJournal, end: str
) -> None:
    """The venue made the trade before the cancel, and listed it after."""
    order = await open_order(journal, "2")
    await getattr(journal, end)(order.client_order_id)
    assert await journal.filled(trade(order, "1", "0.5"), wait=True)
    stored = await db.orders.get(order.id)
    assert (stored.status, stored.filled_quantity) == (end, Decimal("0.5"))
    assert await db.trades.count() == 1
    assert (await _position(db))[0] == Decimal("0.5")


async def test_a_late_fill_is_recorded_after_a_restart_too(db: Database, strategy_id: int) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        order = await open_order(journal, "2")
        await journal.cancelled(order.client_order_id)
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        await journal.restore()  # the cancelled order is not among those restored
        assert await journal.filled(trade(order, "1", "0.5"), wait=True)
    assert (await db.orders.get(order.id)).filled_quantity == Decimal("0.5")


async def test_a_fill_of_a_rejected_order_is_refused(db: Database, journal: OrderJournal) -> None:
    order = await journal.intend(OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal(2)))
    await journal.rejected(order.client_order_id, reason="never_sent")
    with pytest.raises(OrderEventRefused, match="rejected"):
        await journal.filled(trade("v-x", "1", "0.5"), client_order_id=order.client_order_id)


async def test_a_fill_for_an_unknown_venue_order_is_refused(journal: OrderJournal) -> None:
    with pytest.raises(OrderEventRefused, match="V404"):
        await journal.filled(trade("V404", "1", "1"))


async def test_a_fill_of_another_symbol_is_refused(journal: OrderJournal) -> None:
    order = await open_order(journal)
    with pytest.raises(OrderEventRefused, match="ETHUSDT"):
        await journal.filled(trade(order, "1", "1", symbol="ETHUSDT"))


async def _position(db: Database) -> tuple[Decimal, Decimal | None, Decimal, Decimal]:
    (position,) = await db.orders.positions()
    return position.quantity, position.average_price, position.realized_pnl, position.fees


async def test_position_long_add_reduce_flip_and_close(db: Database, journal: OrderJournal) -> None:
    steps = [
        # side, quantity, price, fee -> quantity, average price, realized pnl, fees
        ("buy", "1", "100", "0.1", ("1", "100", "0", "0.1")),
        ("buy", "1", "110", "0.1", ("2", "105", "0", "0.2")),
        ("sell", "0.5", "120", "0.1", ("1.5", "105", "7.5", "0.3")),
        ("sell", "2.5", "90", "0.1", ("-1", "90", "-15", "0.4")),
        ("buy", "1", "80", "0.1", ("0", None, "-5", "0.5")),
    ]
    for number, (side, quantity, price, fee, expected) in enumerate(steps, start=1):
        order = await open_order(journal, quantity, side=side)
        await journal.filled(trade(order, str(number), quantity, price, fee=fee), wait=True)
        want = tuple(None if value is None else Decimal(value) for value in expected)
        assert await _position(db) == want, f"after step {number}"
        assert journal.order(order.client_order_id) is not None


async def test_positions_are_kept_per_strategy_and_venue(
    db: Database, journal: OrderJournal, strategy_id: int
) -> None:
    await journal.filled(trade(await open_order(journal), "1", "1"), wait=True)
    async with db.journal(strategy_id=strategy_id, venue="other") as other:
        order = await open_order(other, side="sell", venue_id="X1")
        await other.filled(trade(order, "1", "1"), wait=True)
    held = {p.venue: p.quantity for p in await db.orders.positions(strategy_id=strategy_id)}
    assert held == {"paper": 1, "other": -1}
