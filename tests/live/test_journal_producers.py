"""A producer that records events at full speed, never finding the queue full, still lets the
journal's batches commit while it records: it gives the event loop a turn about once a
millisecond."""

from __future__ import annotations

import time
from decimal import Decimal

from quantflow_async import Database
from quantflow_async.live.orders import OrderRequest


async def test_batches_commit_while_a_producer_records_without_pause(
    db: Database, strategy_id: int
) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper", batch_size=50) as journal:
        order = await journal.intend(OrderRequest("BTCUSDT", "buy", Decimal(1)))
        cid = order.client_order_id
        await journal.submitted(cid)
        recorded = 2  # the intent, committed at once, and the submit
        deadline = time.monotonic() + 10
        # Nothing here awaits anything but the journal, and the queue (50,000) never fills.
        while journal.stats().events_written <= 1 and time.monotonic() < deadline:
            await journal.cancel_requested(cid)
            recorded += 1
        assert journal.stats().events_written > 1
        assert recorded < 50_000
        await journal.flush()
        assert journal.stats().events_written == recorded
