"""Each order event, legal and illegal, through the journal on both backends: what it changes
in the order's row, and what a refusal leaves behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from quantflow_async import Database, InvalidValue
from quantflow_async.errors import OrderEventRefused
from quantflow_async.live.journal import OrderJournal
from quantflow_async.live.orders import OrderRequest

from .journal_support import open_order, trade


@pytest.fixture
async def journal(db: Database, strategy_id: int) -> AsyncIterator[OrderJournal]:
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        yield journal


def request(**overrides: object) -> OrderRequest:
    values: dict[str, object] = {"symbol": "BTCUSDT", "side": "buy", "quantity": Decimal("1")}
    values.update(overrides)
    return OrderRequest(**values)  # type: ignore[arg-type]


async def test_intend_commits_the_order_and_its_intent_before_returning(
    db: Database, journal: OrderJournal
) -> None:
    order = await journal.intend(request(type="limit", limit_price="99.5"))
    stored = await db.orders.get_by_client_order_id(order.client_order_id)
    assert stored == order
    assert (stored.status, stored.filled_quantity, stored.limit_price) == (
        "intended", 0, Decimal("99.5"),
    )  # fmt: skip
    assert [event.kind for event in await db.orders.events(order.id)] == ["intent"]


async def test_the_journal_makes_a_client_order_id_a_venue_takes(journal: OrderJournal) -> None:
    order = await journal.intend(request())
    assert order.client_order_id.startswith(journal.client_id_prefix)
    assert len(order.client_order_id) <= 36


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"quantity": "0"}, "quantity"),
        ({"type": "limit"}, "limit_price"),
        ({"type": "stop_limit", "limit_price": "1"}, "stop_price"),
        ({"client_order_id": "has space"}, "client_order_id"),
        ({"client_order_id": "x" * 37}, "client_order_id"),
        ({"side": "hold"}, "side"),
        ({"metadata": {"x": float("nan")}}, "metadata"),
        ({"metadata": {"x": float("inf")}}, "metadata"),
        ({"metadata": {"x": "a\x00b"}}, "metadata"),
        ({"metadata": {"x": "\ud800"}}, "metadata"),
        ({"metadata": {"x": Decimal("1.5")}}, "metadata"),
        ({"metadata": {1: "x"}}, "metadata"),
        ({"metadata": ["x"]}, "metadata"),
    ],
)
def test_a_bad_request_names_its_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        request(**overrides)
    assert caught.value.field == field


async def test_an_order_keeps_its_metadata_as_stored_json(
    db: Database, journal: OrderJournal
) -> None:
    order = await journal.intend(request(metadata={"why": "breakout", "levels": (1, 2.5)}))
    assert order.metadata == {"why": "breakout", "levels": [1, 2.5]}
    assert (await db.orders.get(order.id)).metadata == order.metadata


async def test_submitted_then_acknowledged_opens_the_order(
    db: Database, journal: OrderJournal
) -> None:
    order = await open_order(journal, venue_id="V1")
    await journal.flush()
    stored = await db.orders.get(order.id)
    assert (stored.status, stored.venue_order_id) == ("open", "V1")
    kinds = [event.kind for event in await db.orders.events(order.id)]
    assert kinds == ["intent", "submitted", "acknowledged"]


async def test_an_ack_may_arrive_before_submitted_was_recorded(
    db: Database, journal: OrderJournal
) -> None:
    order = await journal.intend(request())
    await journal.acknowledged(order.client_order_id, "V9", wait=True)
    assert (await db.orders.get(order.id)).status == "open"


async def test_a_fill_may_arrive_before_the_ack(db: Database, journal: OrderJournal) -> None:
    order = await journal.intend(request(quantity="2"))
    await journal.submitted(order.client_order_id)
    fill = trade("V7", "1", "0.5")
    assert await journal.filled(fill, client_order_id=order.client_order_id, wait=True)
    stored = await db.orders.get(order.id)
    assert (stored.status, stored.venue_order_id) == ("partially_filled", "V7")
    await journal.acknowledged(order.client_order_id, "V7", wait=True)
    assert (await db.orders.get(order.id)).status == "partially_filled"


async def test_cancel_requested_is_recorded_and_keeps_the_status(
    db: Database, journal: OrderJournal
) -> None:
    order = await open_order(journal)
    await journal.cancel_requested(order.client_order_id)
    await journal.cancelled(order.client_order_id, reason="user", wait=True)
    stored = await db.orders.get(order.id)
    events = await db.orders.events(order.id)
    assert stored.status == "cancelled"
    assert [(e.kind, e.status_after) for e in events[-2:]] == [
        ("cancel_requested", "open"), ("cancelled", "cancelled"),
    ]  # fmt: skip
    assert events[-1].reason == "user"


@pytest.mark.parametrize("final", ["cancelled", "expired"])
async def test_a_partially_filled_order_can_end_cancelled_or_expired(
    db: Database, journal: OrderJournal, final: str
) -> None:
    order = await open_order(journal, "2")
    await journal.filled(trade(order, "1", "0.5"))
    await getattr(journal, final)(order.client_order_id, wait=True)
    stored = await db.orders.get(order.id)
    assert (stored.status, stored.filled_quantity) == (final, Decimal("0.5"))


async def test_an_intended_order_never_sent_is_rejected(
    db: Database, journal: OrderJournal
) -> None:
    order = await journal.intend(request())
    await journal.rejected(order.client_order_id, reason="never_sent", wait=True)
    (event,) = (await db.orders.events(order.id))[1:]
    assert (event.kind, event.reason, event.status_after) == ("rejected", "never_sent", "rejected")


async def test_any_open_order_can_become_unknown_and_then_what_the_venue_reports(
    db: Database, journal: OrderJournal
) -> None:
    order = await open_order(journal)
    await journal.mark_unknown(order.client_order_id, reason="not at the venue")
    await journal.set_status(order.client_order_id, "cancelled", reason="reconciled", wait=True)
    assert (await db.orders.get(order.id)).status == "cancelled"
    events = await db.orders.events(order.id)
    assert [(e.kind, e.status_after, e.reason) for e in events[-2:]] == [
        ("status", "unknown", "not at the venue"), ("status", "cancelled", "reconciled"),
    ]  # fmt: skip


ILLEGAL = {
    "submitted twice": ("submitted", {}),
    "cancel of a filled order": ("cancelled", {}),
    "reject of a filled order": ("rejected", {"reason": "late"}),
    "unknown after final": ("mark_unknown", {"reason": "lost"}),
    "cancel request on a filled order": ("cancel_requested", {}),
}


@pytest.mark.parametrize(("method", "arguments"), ILLEGAL.values(), ids=ILLEGAL.keys())
async def test_an_illegal_event_is_refused_kept_and_changes_nothing(
    db: Database, journal: OrderJournal, method: str, arguments: dict[str, object]
) -> None:
    order = await open_order(journal)
    await journal.filled(trade(order, "1", "1", "101"), wait=True)
    before = await db.orders.get(order.id)
    with pytest.raises(OrderEventRefused) as caught:
        await getattr(journal, method)(order.client_order_id, **arguments)
    assert caught.value.client_order_id == order.client_order_id
    await journal.flush()
    assert await db.orders.get(order.id) == before
    refused = (await db.orders.events(order.id))[-1]
    assert (refused.kind, refused.status_after) == ("refused", "filled")
    assert refused.details is not None and refused.reason == caught.value.reason
    assert journal.stats().refused == 1


async def test_an_event_for_an_unknown_order_is_refused_and_kept_without_an_order(
    db: Database, journal: OrderJournal, strategy_id: int
) -> None:
    with pytest.raises(OrderEventRefused, match="no order"):
        await journal.cancelled("nobody")
    await journal.flush()
    (refused,) = await db.orders.refused(strategy_id=strategy_id)
    assert refused.order_id is None
    assert refused.details == {"attempted": "cancelled", "client_order_id": "nobody"}


async def test_a_client_order_id_is_used_once(db: Database, journal: OrderJournal) -> None:
    await journal.intend(request(client_order_id="mine-1"))
    with pytest.raises(OrderEventRefused, match="already used"):
        await journal.intend(request(client_order_id="mine-1"))
    assert len(await db.orders.list()) == 1


async def test_a_venue_order_id_belongs_to_one_order(journal: OrderJournal) -> None:
    await open_order(journal, venue_id="V1")
    other = await journal.intend(request())
    with pytest.raises(OrderEventRefused, match="V1"):
        await journal.acknowledged(other.client_order_id, "V1")


async def test_a_status_that_disagrees_with_the_fills_is_refused(journal: OrderJournal) -> None:
    order = await open_order(journal, "2")
    await journal.mark_unknown(order.client_order_id, reason="lost")
    with pytest.raises(OrderEventRefused, match="journal the fills first"):
        await journal.set_status(order.client_order_id, "filled", reason="reconciled")
