"""A producer that records events at full speed, never finding the queue full, still gives the
event loop a turn about once a millisecond: other tasks (the journal's own writer among them)
run while it records, not only when it stops."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from quantflow_async import Database
from quantflow_async.live.orders import OrderRequest

EVENTS = 20_000  # fewer than the queue holds (50,000): the producer never waits for room


async def test_a_producer_recording_without_pause_lets_other_tasks_run(
    db: Database, strategy_id: int
) -> None:
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        order = await journal.intend(OrderRequest("BTCUSDT", "buy", Decimal(1)))
        await journal.submitted(order.client_order_id)
        counter = asyncio.create_task(count_turns())
        await asyncio.sleep(0)
        started = turns
        for _ in range(EVENTS):  # nothing here awaits anything but the journal
            await journal.cancel_requested(order.client_order_id)
        during = turns - started
        counter.cancel()
        await journal.flush()
        assert journal.stats().events_written == EVENTS + 2
    assert during >= 10, f"the event loop ran other tasks {during} times while 20,000 were recorded"
