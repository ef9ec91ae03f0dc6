"""Recording one event of an order: find the order, check the event against its state, move
the order's memory (and the position, for a fill) and queue the rows, with no await between
the check and the queue, so that memory and queue always move together."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from quantflow_async.ingest.journal_tickets import Ticket
from quantflow_async.ingest.journal_writer import JournalWriter
from quantflow_async.live.journal_entries import EventRows
from quantflow_async.live.journal_lookup import OrderLookup
from quantflow_async.live.journal_refusals import Refusals
from quantflow_async.live.orders import Change, Position, is_duplicate
from quantflow_async.live.positions import apply_fill, flat
from quantflow_async.live.venue import AssetBalance, VenueTrade
from quantflow_async.store.journal_batch import JournalEntry


class EventRecorder:
    """The recording of one journal's checked events, and the positions its fills moved."""

    def __init__(
        self, writer: JournalWriter, rows: EventRows, lookup: OrderLookup, refusals: Refusals
    ) -> None:
        self._writer = writer
        self._rows = rows
        self._lookup = lookup
        self._refusals = refusals
        self.positions: dict[str, Position] = {}
        self.duplicates = 0

    async def record(
        self,
        client_order_id: str,
        change: Change,
        *,
        wait: bool,
        reason: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """An event that is not a fill; `occurred_at` already checked."""
        lookup, writer = self._lookup, self._writer
        tracked = lookup.known(client_order_id) or await lookup.find(client_order_id, change)
        # An acknowledgement's venue id, new to the journal, is checked against other
        # strategies' and earlier sessions' orders in its batch (JournalWriter), not here:
        # a read per acknowledgement cost more than the rest of recording it.
        acknowledged = change.kind == "acknowledged"
        owner = None
        if not acknowledged and lookup.names_a_new_venue_id(tracked, change):
            owner = await lookup.venue_id_owner(tracked, change)
        if not writer.room_now():
            await writer.room()
        # From here to the put, nothing awaits: the order's memory and the queue move together.
        if is_duplicate(tracked.state, change):
            self.duplicates += 1
            return
        lookup.check_venue_order_id(tracked, change, owner)
        new_id = change.venue_order_id != tracked.state.venue_order_id
        claim = change.venue_order_id if acknowledged and new_id else None
        state = self._refusals.next(tracked, change)
        now = datetime.now(UTC)
        lookup.move(tracked, state, now)
        event = self._rows.event(
            change.kind, tracked.placed.id, now, venue_event_id=change.venue_event_id,
            status_after=state.status, reason=reason, occurred_at=occurred_at,
            details=None if change.status is None else {"status": change.status},
        )  # fmt: skip
        ticket = writer.put(JournalEntry(event, self._rows.order_change(tracked), claim=claim))
        if wait:
            await writer.committed(ticket)

    async def fill(
        self,
        trade: VenueTrade,
        change: Change,
        client_order_id: str | None,
        *,
        reason: str | None,
        wait: bool,
    ) -> bool:
        """A checked trade of an order; False for a counted duplicate."""
        lookup, writer = self._lookup, self._writer
        if client_order_id is None:
            tracked = lookup.known_by_venue_id(trade.venue_order_id)
            if tracked is None:
                client_order_id = await lookup.client_order_id_of(trade.venue_order_id, change)
                tracked = await lookup.find(client_order_id, change)
        else:
            tracked = lookup.known(client_order_id) or await lookup.find(client_order_id, change)
        owner = None
        if lookup.names_a_new_venue_id(tracked, change):
            owner = await lookup.venue_id_owner(tracked, change)
        if not writer.room_now():
            await writer.room()
        # From here to the put, nothing awaits: the order's memory and the queue move together.
        if is_duplicate(tracked.state, change):
            self.duplicates += 1
            return False
        lookup.check_trade(tracked, change, trade)
        lookup.check_venue_order_id(tracked, change, owner)
        state = self._refusals.next(tracked, change)
        now = datetime.now(UTC)
        order = tracked.placed
        rows = self._rows
        held = self.positions.get(order.symbol) or flat(
            rows.strategy_id, rows.venue, order.symbol, now
        )
        position, realized = apply_fill(
            held, side=order.side, quantity=trade.quantity, price=trade.price, fee=trade.fee,
            at=now,
        )  # fmt: skip
        self.positions[order.symbol] = position
        lookup.move(tracked, state, now)
        ticket = writer.put(rows.fill(tracked, trade, position, realized, reason=reason, now=now))
        if wait:
            await writer.committed(ticket)
        return True

    async def cursor(
        self, stream: str, last_id: str, cursors: dict[str, str], *, wait: bool
    ) -> None:
        """The last venue event seen on `stream` (checked), remembered in `cursors` as it is
        queued."""
        await self._writer.room()
        cursors[stream] = last_id
        row = self._rows.cursor(stream, last_id, datetime.now(UTC))
        await self.settle(self._writer.put(JournalEntry(cursor=row)), wait)

    async def balances(
        self, balances: Mapping[str, AssetBalance], at: datetime, *, wait: bool
    ) -> None:
        """A snapshot of the venue's balances taken `at` (checked)."""
        rows = self._rows.balances(balances, at)  # checked before anything is queued
        await self._writer.room()
        await self.settle(self._writer.put(JournalEntry(balances=rows)), wait)

    async def settle(self, ticket: Ticket, wait: bool) -> None:
        if wait:
            await self._writer.committed(ticket)
