"""PostgreSQL: a journal whose lease connection ended (a server restart, an idle-session
timeout, `pg_terminate_backend`) writes nothing more, so that a second journal, which may now
open, is the only writer of its strategy and venue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from quantflow_async import Conflict, Database, Settings, StorageError
from quantflow_async.live import journal_lease
from quantflow_async.live.orders import OrderRequest

from ..support.server_processes import dsn, end_server_process
from .journal_support import open_order, trade

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_database_url: str) -> AsyncIterator[Database]:
    async with Database(settings=Settings(database_url=postgres_database_url)) as database:
        await database.migrate()
        yield database


async def test_a_journal_that_lost_its_lease_writes_nothing_and_the_next_one_takes_over(
    pg: Database,
) -> None:
    strategy_id = (await pg.strategies.create(name="lease-lost")).id
    with pytest.raises(StorageError, match="lease of the quantflow journal .* was lost"):
        async with pg.journal(strategy_id=strategy_id, venue="paper") as first:
            order = await open_order(first)
            await first.flush()
            assert first.lease_pid is not None
            await end_server_process(pg, first.lease_pid)
            async with pg.journal(strategy_id=strategy_id, venue="paper") as second:
                await second.restore()
                with pytest.raises(StorageError, match="was lost"):
                    await first.filled(trade(order, "1", "1"), wait=True)
                with pytest.raises(StorageError):
                    await first.intend(
                        OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal(1))
                    )
                assert await second.filled(trade(order, "2", "1"), wait=True)
    stored = await pg.orders.get(order.id)
    assert (stored.status, stored.filled_quantity) == ("filled", Decimal(1))
    assert await pg.trades.count(strategy_id=strategy_id) == 1
    assert len(await pg.orders.list(strategy_id=strategy_id)) == 1


async def test_an_intent_after_the_lease_was_lost_is_refused_before_it_is_stored(
    pg: Database,
) -> None:
    strategy_id = (await pg.strategies.create(name="lease-lost-intent")).id
    async with pg.journal(strategy_id=strategy_id, venue="paper") as journal:
        assert journal.lease_pid is not None
        await end_server_process(pg, journal.lease_pid)
        with pytest.raises(StorageError, match="was lost"):
            await journal.intend(OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal(1)))
    assert await pg.orders.list(strategy_id=strategy_id) == []


async def test_a_journal_waits_for_the_last_holders_write_in_flight_then_gives_up(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write of the journal that lost the lease holds the fence key shared until it ends;
    the next journal waits for it, and says so if it does not end."""
    strategy_id = (await pg.strategies.create(name="lease-fence-wait")).id
    monkeypatch.setattr(journal_lease, "FENCE_WAIT_SECONDS", 0.3)
    writing = await asyncpg.connect(dsn(pg))
    try:
        transaction = writing.transaction()
        await transaction.start()
        fence = journal_lease._key("fence", strategy_id, "paper")
        await writing.execute("SELECT pg_advisory_xact_lock_shared($1)", fence)
        with pytest.raises(Conflict, match="a write of the journal that held it before"):
            async with pg.journal(strategy_id=strategy_id, venue="paper"):
                pass
        await transaction.commit()
        async with pg.journal(strategy_id=strategy_id, venue="paper") as journal:
            assert journal.lease_pid is not None
    finally:
        await writing.close()
