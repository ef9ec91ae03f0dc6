"""The `db` fixture: each test gets an empty database at the head revision, whatever the test
before it stored or changed (a copy of a file migrated once on SQLite, an emptied schema on
PostgreSQL). The two tests run in this order: the first leaves rows and a trigger behind."""

from __future__ import annotations

from sqlalchemy import text

from quantflow_async import Database
from quantflow_async.store.migrations import head_revision

from .conftest import make_fill


async def _trigger_names(db: Database) -> list[str]:
    if db.engine.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    async with db.engine.connect() as connection:
        return [row[0] for row in await connection.execute(text(query))]


async def test_a_test_leaves_rows_and_a_trigger_behind(db: Database, strategy_id: int) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(3)])
    if db.engine.dialect.name == "sqlite":
        trigger = (
            "CREATE TRIGGER refuse BEFORE INSERT ON trades WHEN NEW.symbol = 'REFUSED' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        statements = [trigger]
    else:
        statements = [
            "CREATE OR REPLACE FUNCTION refuse_in_fixture_test() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON trades "
            "FOR EACH ROW EXECUTE FUNCTION refuse_in_fixture_test()",
        ]
    async with db.engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))
    assert await _trigger_names(db) == ["refuse"]


async def test_the_next_test_starts_empty_at_head_with_ids_from_one(db: Database) -> None:
    assert await _trigger_names(db) == []
    assert await db.trades.count() == 0
    assert await db.strategies.list() == []
    assert (await db.strategies.create(name="first")).id == 1
    async with db.engine.connect() as connection:
        revision = (await connection.execute(text("SELECT version_num FROM alembic_version"))).one()
    assert revision == (head_revision(),)
