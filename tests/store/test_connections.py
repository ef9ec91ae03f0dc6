"""The pool of reading connections: configurable, checked, and a connection the server drops
is replaced, never handed to a reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from quantflow_async import Database, InvalidValue, Settings
from quantflow_async.store.engine import WRITE_OPTION

from ..conftest import make_fill


async def test_pool_settings_reach_the_engine(database_url: str) -> None:
    settings = Settings(
        database_url=database_url, pool_size=3, pool_max_overflow=2, pool_timeout=7.5
    )
    async with Database(settings=settings) as db:
        pool = db.engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 2, 7.5)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "setting, value",
    [("pool_max_overflow", -1), ("pool_timeout", float("nan")), ("pool_recycle", -5.0)],
)
def test_bad_pool_settings_are_refused_naming_them(setting: str, value: float) -> None:
    with pytest.raises(InvalidValue, match=f"^{setting}: "):
        Settings(**{setting: value})  # type: ignore[arg-type]


@pytest.mark.postgres
async def test_readers_and_the_writer_survive_the_server_dropping_every_connection(
    postgres_database_url: str,
) -> None:
    async with Database(postgres_database_url) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        async with db.writer(max_latency=0) as writer:
            await writer.submit_many(make_fill(strategy_id, n) for n in range(100))
            await writer.flush()
            assert len(await db.trades.list(limit=10)) == 10  # the pool holds a connection
            async with Database(postgres_database_url) as admin, admin.engine.connect() as c:
                dropped = await c.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            assert dropped >= 2  # the reader's pooled connection and the writer's
            assert len(await db.trades.list(limit=1000)) == 100
            await writer.submit_many(make_fill(strategy_id, n) for n in range(100, 200))
        assert await db.trades.count() == 200
        assert writer.stats().written == 200


async def test_a_sqlite_connection_dropped_mid_statement_leaves_no_lock_behind(
    tmp_path: Path,
) -> None:
    """A connection dropped while a cursor still holds its statement (a task cancelled
    mid-query, the cancellation's traceback keeping the cursor alive) used to stay open in
    SQLite with its write lock, and the next writer waited out its busy timeout for ever."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite3'}"
    async with Database(settings=Settings(database_url=url, busy_timeout_ms=3000)) as db:
        await db.migrate()
        first = await db.strategies.create(name="s0")
        for n in range(1, 20):
            await db.strategies.create(name=f"s{n}")
        async with db.engine.connect() as dropped:
            dropped = await dropped.execution_options(**{WRITE_OPTION: True})
            await dropped.begin()
            await dropped.execute(text("UPDATE strategies SET description = 'first'"))
            unfinished = await dropped.stream(text("SELECT id FROM strategies"))
            await unfinished.fetchmany(1)
            await dropped.invalidate()
        # It raised "database is locked" once the busy timeout was over.
        await db.strategies.update(first.id, description="second")
        assert (await db.strategies.get(first.id)).description == "second"
        del unfinished
