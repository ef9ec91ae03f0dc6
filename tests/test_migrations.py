"""Alembic: upgrade, downgrade and upgrade again, from the library and from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy import Connection, inspect

from quantflow_async import Database
from quantflow_async.migrations import alembic_config, head_revision

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"strategies", "backtests", "trades"}


async def _tables(db: Database) -> set[str]:
    def read(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names()) - {"alembic_version"}

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def _run(db: Database, action: str, revision: str) -> None:
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(run)


async def test_upgrade_downgrade_upgrade_round_trips(database_url: str) -> None:
    async with Database(database_url) as db:
        await _run(db, "upgrade", "head")
        assert await _tables(db) == TABLES
        await _run(db, "downgrade", "base")
        assert await _tables(db) == set()
        await _run(db, "upgrade", "head")
        assert await _tables(db) == TABLES


async def test_migrations_run_one_table_at_a_time(database_url: str) -> None:
    async with Database(database_url) as db:
        await _run(db, "upgrade", "001")
        assert await _tables(db) == {"strategies"}
        await _run(db, "upgrade", "002")
        assert await _tables(db) == {"strategies", "backtests"}
        await _run(db, "upgrade", "003")
        assert await _tables(db) == TABLES
        assert head_revision() == "003"


def test_alembic_command_line_round_trips_on_the_url_from_the_environment(
    database_url: str,
) -> None:
    env = {**os.environ, "QUANTFLOW_DATABASE_URL": database_url}
    alembic = [sys.executable, "-m", "alembic"]
    for revision in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        result = subprocess.run(
            [*alembic, *revision], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [*alembic, "current"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "003 (head)" in result.stdout


async def test_migrate_twice_is_harmless(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        await db.migrate()
        assert await _tables(db) == TABLES
