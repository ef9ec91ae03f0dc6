"""What the journal does with an event it refuses: raise OrderEventRefused to the caller, and
keep the event in the journal, marked refused with its reason, without touching the order."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import NoReturn

from quantflow_async.errors import OrderEventRefused
from quantflow_async.ingest.journal_writer import JournalWriter
from quantflow_async.live.journal_entries import EventRows
from quantflow_async.live.journal_memory import Tracked
from quantflow_async.live.orders import Change, Order, OrderState, next_state
from quantflow_async.store.journal_batch import JournalEntry

log = logging.getLogger("quantflow_async.live.journal")


class Refusals:
    """Counts and stores the events one journal refused."""

    def __init__(self, writer: JournalWriter, rows: EventRows) -> None:
        self._writer = writer
        self._rows = rows
        self.count = 0

    def next(self, tracked: Tracked, change: Change) -> OrderState:
        """The order's state after `change`, or the refusal, kept and raised."""
        try:
            return next_state(tracked.state, change)
        except OrderEventRefused as refused:
            self.put(tracked.order, change, refused)
            raise

    def refuse(self, tracked: Tracked, change: Change, reason: str) -> NoReturn:
        refused = OrderEventRefused(tracked.order.client_order_id, change.kind, reason)
        self.put(tracked.order, change, refused)
        raise refused

    def count_refused(self, refused: OrderEventRefused) -> None:
        self.count += 1
        log.warning("journal: %s", refused)

    def put(self, order: Order | None, change: Change, refused: OrderEventRefused) -> None:
        """Queue the refused event; the queue has room (the caller made sure)."""
        self.count_refused(refused)
        row = self._rows.refused(
            order, change, refused.reason, datetime.now(UTC), refused.client_order_id
        )
        self._writer.put(JournalEntry(event=row))

    async def store(
        self, order: Order | None, change: Change, refused: OrderEventRefused
    ) -> NoReturn:
        """Wait for room in the queue, keep the refused event, raise the refusal."""
        await self._writer.room()
        self.put(order, change, refused)
        raise refused
