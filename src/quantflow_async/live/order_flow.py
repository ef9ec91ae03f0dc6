"""One order's way out and its facts' way back: journal first, venue second, fills from trades.

The rule that makes a crash harmless: the intent is durable before anything is sent, and the
venue is told our client order id, so that after a crash reconciliation can ask the venue
for every order the journal holds and nothing is sent twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast, get_args

from quantflow_async.errors import VenueRejected
from quantflow_async.live.reconcile import record_new_fills
from quantflow_async.live.venue import NewOrder, TimeInForce, Venue, VenueOrder

if TYPE_CHECKING:
    from quantflow_async.live.journal import OrderJournal
    from quantflow_async.live.orders import Order, OrderRequest

log = logging.getLogger(__name__)


async def send_order(journal: OrderJournal, venue: Venue, request: OrderRequest) -> Order:
    """Journal `request`'s intent, send it, journal the venue's answer; the order as journaled.

    A refusal by the venue is journaled as `rejected` and returned, not raised. A fault the
    venue could not settle (VenueUnavailable) propagates with the order left `submitted`:
    reconciliation finds out whether it arrived.
    """
    order = await journal.intend(request)
    cid = order.client_order_id
    await journal.submitted(cid)
    try:
        answer = await venue.create_order(_new_order(order))
    except VenueRejected as exc:
        await journal.rejected(cid, reason=str(exc))
        return _journaled(journal, cid)
    await record_answer(journal, venue, cid, answer)
    return _journaled(journal, cid)


async def record_answer(journal: OrderJournal, venue: Venue, cid: str, answer: VenueOrder) -> None:
    """Journal what an answer says about an order. Fills come from the venue's trades: an
    order that ended (cancelled, expired) with fills the journal has not seen gets them first,
    so the end is recorded after every fill it kept."""
    known = journal.order(cid)
    if known is None or known.venue_order_id is None:
        await journal.acknowledged(cid, answer.venue_order_id, occurred_at=answer.updated_at)
    known = journal.order(cid)
    ending = answer.status in ("cancelled", "expired", "rejected")
    if ending and known is not None and answer.filled_quantity > known.filled_quantity:
        await sync_fills(journal, venue, known.symbol)
    if answer.status == "cancelled":
        await journal.cancelled(cid, venue_event_id=f"cancel:{answer.venue_order_id}")
    elif answer.status == "expired":
        await journal.expired(cid)
    elif answer.status == "rejected":
        await journal.rejected(cid, reason="rejected by the venue")


async def sync_fills(journal: OrderJournal, venue: Venue, symbol: str) -> int:
    """Journal every trade of ours on `symbol` after the journal's cursor; return how many were
    new. A trade already journaled is a counted duplicate; a trade of an order that is not this
    journal's (another bot on the account, a manual order) is left alone and logged. The cursor
    moves only after the fills before it are recorded, so a crash never skips a fill."""
    seen = await record_new_fills(journal, venue, symbol)
    for trade in (*seen.foreign_trades, *seen.stray_trades):
        log.warning("left alone: trade %s of venue order %s, not ours", trade.trade_id,
                    trade.venue_order_id)  # fmt: skip
    return len(seen.fills_recorded)


async def cancel_open_orders(journal: OrderJournal, venue: Venue, symbol: str) -> int:
    """Ask the venue to cancel every open order of ours on `symbol`; return how many."""
    cancelled = 0
    for order in await venue.fetch_open_orders(symbol):
        cid = order.client_order_id
        if cid is None or journal.order(cid) is None:
            continue  # not ours: leave it alone
        await journal.cancel_requested(cid)
        answer = await venue.cancel_order(symbol, client_order_id=cid)
        await record_answer(journal, venue, cid, answer)
        cancelled += 1
    return cancelled


def _new_order(order: Order) -> NewOrder:
    return NewOrder(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        quantity=order.quantity,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        time_in_force=time_in_force(order.time_in_force),
    )


def time_in_force(value: str | None) -> TimeInForce | None:
    """A stored time in force as the venue's literal (the journal stores only these)."""
    if value is None:
        return None
    for known in get_args(TimeInForce):
        if value == known:
            return cast(TimeInForce, known)
    raise ValueError(f"time in force {value!r} is not one of {get_args(TimeInForce)}")


def _journaled(journal: OrderJournal, cid: str) -> Order:
    order = journal.order(cid)
    if order is None:  # the journal keeps every order it touched this session
        raise LookupError(f"order {cid!r} vanished from the journal")
    return order
