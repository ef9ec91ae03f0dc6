"""A journal after a restart finds what the one before left; what it committed is durable, and
closing or cancelling its owner commits everything it accepted."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from quantflow_async import Database, Settings
from quantflow_async.live.orders import OrderRequest
from quantflow_async.live.venue import AssetBalance

from .journal_support import open_order, trade


async def test_restore_after_a_restart_equals_the_state_before(
    db: Database, strategy_id: int
) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper") as before:
        filled = await open_order(before)
        await before.filled(trade(filled, "1", "1", "100"))
        partial = await open_order(before, "3")
        await before.filled(trade(partial, "2", "1", "101"))
        still_open = await open_order(before)
        doubtful = await before.intend(
            OrderRequest(symbol="BTCUSDT", side="sell", quantity=Decimal("2"))
        )
        await before.advance_cursor("trades:BTCUSDT", "2")
        expected_open = [before.order(o.client_order_id) for o in (partial, still_open)]
        expected_doubt = [before.order(doubtful.client_order_id)]
        expected_positions = (await before.restore()).positions

    async with db.journal(strategy_id=strategy_id, venue="paper") as after:
        restored = await after.restore()
    assert list(restored.open_orders) == expected_open
    assert list(restored.in_doubt) == expected_doubt
    assert restored.positions == expected_positions
    assert restored.positions["BTCUSDT"].quantity == 2
    assert restored.cursors == {"trades:BTCUSDT": "2"}
    assert after.order(partial.client_order_id) == expected_open[0]


async def test_an_order_restored_goes_on_where_it_was(db: Database, strategy_id: int) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper") as before:
        order = await open_order(before, "3")
        await before.filled(trade(order, "1", "1", "100"))
    async with db.journal(strategy_id=strategy_id, venue="paper") as after:
        await after.restore()
        await after.filled(trade(order, "2", "2", "103"), wait=True)
    stored = await db.orders.get(order.id)
    assert (stored.status, stored.filled_quantity, stored.average_price) == (
        "filled", 3, Decimal("102"),
    )  # fmt: skip


async def test_a_restore_while_another_task_records_fills_loses_none_of_them(
    db: Database, strategy_id: int
) -> None:
    """Each restore waits for the fills being recorded and holds the next back until memory
    is replaced: memory never goes back to an older read."""
    fills = 300
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        order = await open_order(journal, str(fills))
        done = False

        async def record() -> None:
            nonlocal done
            for number in range(1, fills + 1):
                await journal.filled(trade(order, str(number), "1"))
                if number % 5 == 0:
                    await asyncio.sleep(0)
            done = True

        async def restore() -> int:
            restores = 0
            while not done:
                await journal.restore()
                restores += 1
            return restores

        _, restores = await asyncio.gather(record(), restore())
        assert restores > 1
        await journal.flush()
        held = journal.order(order.client_order_id)
        assert held is not None and held.filled_quantity == fills
        position = journal.position("BTCUSDT")
        assert position is not None and position.quantity == fills
    assert (await db.orders.get(order.id)).filled_quantity == fills
    (stored,) = await db.orders.positions(strategy_id=strategy_id)
    assert stored.quantity == fills
    assert await db.trades.count() == fills


async def test_an_event_awaited_with_wait_is_durable(db: Database, strategy_id: int) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper", max_latency=60) as journal:
        order = await open_order(journal)
        await journal.filled(trade(order, "1", "1"), wait=True)
        async with Database(settings=db.settings) as reader:
            assert (await reader.orders.get(order.id)).status == "filled"
            assert await reader.trades.count() == 1


async def test_cancelling_the_owner_commits_every_accepted_event(
    db: Database, strategy_id: int
) -> None:
    recorded: list[str] = []

    async def bot() -> None:
        async with db.journal(strategy_id=strategy_id, venue="paper", max_latency=60) as journal:
            for number in range(50):
                order = await open_order(journal)
                await journal.filled(trade(order, str(number), "1"))
                recorded.append(order.client_order_id)
            await asyncio.Event().wait()

    task = asyncio.create_task(bot())
    while len(recorded) < 50:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert await db.trades.count() == 50
    assert {o.status for o in await db.orders.list()} == {"filled"}


async def test_balances_and_cursors_are_kept(db: Database, strategy_id: int) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        await journal.record_balances(
            {"USDT": AssetBalance("USDT", Decimal("900.5"), Decimal("100"))}, wait=True
        )
        await journal.record_balances({"USDT": AssetBalance("USDT", Decimal("800"), Decimal(0))})
        await journal.advance_cursor("trades:BTCUSDT", "41")
        await journal.advance_cursor("trades:BTCUSDT", "42")
    (latest,) = await db.orders.balances(venue="paper")
    assert (latest.free, latest.total) == (800, 800)
    assert len(await db.orders.balances(latest_only=False)) == 2
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        assert (await journal.restore()).cursors == {"trades:BTCUSDT": "42"}


async def test_closing_twice_is_fine(db: Database, strategy_id: int) -> None:
    journal = db.journal(strategy_id=strategy_id, venue="paper")
    async with journal:
        await open_order(journal)
    await journal.aclose()
    assert journal.stats().events_written == 3


async def test_a_second_database_sees_the_journal_on_a_fresh_settings(
    db: Database, strategy_id: int
) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
        order = await journal.intend(
            OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal("1"))
        )
    async with Database(settings=Settings(database_url=db.settings.database_url)) as other:
        assert (await other.orders.get_by_client_order_id(order.client_order_id)).id == order.id
