"""Faults met by the journal's batches, made for real: a trigger that refuses a row, and a
write lock held by another connection that the batch waits out."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from quantflow_async import Database, Settings, StorageError
from quantflow_async.config import WriterOptions

from .journal_support import open_order, trade

SQLITE_TRIGGER = (
    "CREATE TRIGGER refuse_seven BEFORE INSERT ON trades WHEN NEW.quantity = '0.7' "
    "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
)
POSTGRES_TRIGGER = (
    "CREATE FUNCTION refuse_seven() RETURNS trigger AS $$ BEGIN "
    "IF NEW.quantity = 0.7 THEN RAISE EXCEPTION 'refused by a trigger'; END IF; "
    "RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER refuse_seven BEFORE INSERT ON trades FOR EACH ROW "
    "EXECUTE FUNCTION refuse_seven()",
)


async def test_a_batch_the_database_refuses_stops_the_journal_and_stores_nothing_of_it(
    db: Database, strategy_id: int
) -> None:
    statements = (SQLITE_TRIGGER,) if db.engine.dialect.name == "sqlite" else POSTGRES_TRIGGER
    async with db.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    journal = db.journal(strategy_id=strategy_id, venue="paper")
    with pytest.raises(StorageError, match="refused by a trigger"):
        async with journal:
            order = await open_order(journal)
            await journal.flush()
            with pytest.raises(StorageError, match="refused by a trigger"):
                await journal.filled(trade(order, "1", "0.7"), wait=True)
            with pytest.raises(StorageError, match="stopped"):
                await journal.cancelled(order.client_order_id)
    stored = await db.orders.get(order.id)
    assert (stored.status, stored.filled_quantity) == ("open", 0)
    assert [e.kind for e in await db.orders.events(order.id)][-1] == "acknowledged"
    assert await db.orders.positions() == []


async def test_a_batch_waits_out_a_write_lock_held_elsewhere(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'locked.sqlite3'}"
    writer = WriterOptions(retry_initial_delay=0.02, retry_max_delay=0.1, retry_attempts=20)
    settings = Settings(database_url=url, busy_timeout_ms=20, writer=writer)
    async with Database(settings=settings) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        async with db.journal(strategy_id=strategy.id, venue="paper") as journal:
            order = await open_order(journal)
            await journal.flush()
            other = sqlite3.connect(tmp_path / "locked.sqlite3", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            filling = asyncio.create_task(journal.filled(trade(order, "1", "1"), wait=True))
            await asyncio.sleep(0.3)
            assert not filling.done()
            other.execute("COMMIT")
            other.close()
            assert await filling
        assert (await db.orders.get(order.id)).status == "filled"
