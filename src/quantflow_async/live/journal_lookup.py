"""How the journal finds the order an event names, and the rule that a venue order id belongs
to one order on its venue: the refusals of both, and the move of an order's memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from quantflow_async.errors import OrderEventRefused
from quantflow_async.live.journal_entries import EventRows
from quantflow_async.live.journal_memory import KnownOrders, Tracked
from quantflow_async.live.journal_refusals import Refusals
from quantflow_async.live.orders import Change, OrderState, check_client_order_id
from quantflow_async.live.venue import VenueTrade
from quantflow_async.store.journal_batch import DriverRow


class OrderLookup:
    """The orders of one journal's (strategy, venue), found by client or venue order id."""

    def __init__(self, known: KnownOrders, refusals: Refusals, rows: EventRows) -> None:
        self._known = known
        self._refusals = refusals
        self._rows = rows

    def known(self, client_order_id: str) -> Tracked | None:
        """The order in memory (its id was checked when it came), else None: `find` it."""
        return self._known.get(client_order_id) if isinstance(client_order_id, str) else None

    def known_by_venue_id(self, venue_order_id: str) -> Tracked | None:
        """Our order in memory holding `venue_order_id`, else None: look it up."""
        return self._known.by_venue_id(venue_order_id)

    def names_a_new_venue_id(self, tracked: Tracked, change: Change) -> bool:
        """Whether `change` gives `tracked` a venue order id it does not hold yet."""
        return change.venue_order_id not in (None, tracked.state.venue_order_id)

    async def find(self, client_order_id: str, change: Change) -> Tracked:
        """The order from memory, else from the database; unknown orders are refused."""
        # An id in memory was checked when it came; only a new one is checked here.
        found = self.known(client_order_id)
        if found is None:
            found = await self._known.find(check_client_order_id(client_order_id))
        if found is not None:
            return found
        rows = self._rows
        reason = (
            f"no order with this client_order_id for strategy {rows.strategy_id} on {rows.venue!r}"
        )
        await self._refusals.store(
            None, change, OrderEventRefused(client_order_id, change.kind, reason)
        )

    async def client_order_id_of(self, venue_order_id: str, change: Change) -> str:
        """The client order id of our order holding `venue_order_id`, or the refusal."""
        found = await self._known.find_by_venue_id(venue_order_id)
        if found is not None:
            return found.order.client_order_id
        reason = f"no order with venue_order_id {venue_order_id!r} on {self._rows.venue!r}"
        await self._refusals.store(None, change, OrderEventRefused(None, change.kind, reason))

    async def venue_id_owner(self, tracked: Tracked, change: Change) -> str | None:
        """Who, of any strategy, holds the venue order id `change` gives `tracked`, if it is
        new to the order (a database read when it is not in memory)."""
        if not self.names_a_new_venue_id(tracked, change):
            return None
        return await self._known.venue_id_owner(change.venue_order_id)

    def check_venue_order_id(self, tracked: Tracked, change: Change, owner: str | None) -> None:
        """Refuse `change` if its venue order id is another order's."""
        owner = owner or self._known.owner_of(change.venue_order_id)  # taken since the look-up?
        if owner not in (None, tracked.state.client_order_id):
            self._refusals.refuse(
                tracked, change, f"venue_order_id {change.venue_order_id!r} is {owner!r}'s"
            )

    def check_trade(self, tracked: Tracked, change: Change, trade: VenueTrade) -> None:
        """Refuse a fill whose trade is of another symbol or side than its order."""
        order = tracked.placed
        if (trade.symbol, trade.side) != (order.symbol, order.side):
            self._refusals.refuse(
                tracked, change,
                f"the trade is a {trade.side} of {trade.symbol}, the order a {order.side} of "
                f"{order.symbol}",
            )  # fmt: skip

    def refuse_claim(
        self, order_id: int, venue_order_id: str, holder: str
    ) -> tuple[DriverRow, OrderEventRefused]:
        """An acknowledgement's venue id turned out to be another order's: the order forgets
        it and becomes unknown, for reconciliation; the event is kept as refused."""
        reason = f"venue_order_id {venue_order_id!r} is {holder!r}'s"
        cid = self._known.owner_of(venue_order_id)
        tracked = None if cid is None else self._known.get(cid)
        order = None
        if tracked is not None and tracked.placed.id == order_id:
            tracked.move(
                replace(tracked.state, status="unknown", venue_order_id=None), tracked.updated_at
            )
            self._known.forget_venue_id(venue_order_id)
            order = tracked.order
        refused = OrderEventRefused(cid, "acknowledged", reason)
        self._refusals.count_refused(refused)
        change = Change("acknowledged", venue_order_id=venue_order_id)
        return self._rows.refused(order, change, reason, datetime.now(UTC)), refused

    def move(self, tracked: Tracked, state: OrderState, now: datetime) -> None:
        """The order in its new state, remembered."""
        tracked.move(state, now)
        self._known.remember(tracked)
