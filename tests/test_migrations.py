"""Alembic: upgrade, downgrade and upgrade again, from the library and from the command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect

from quantflow_async import Database, NotFound
from quantflow_async.store.migrations import alembic_config, head_revision

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"strategies", "backtests", "trades", "writer_batches"}


async def _tables(db: Database) -> set[str]:
    def read(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names()) - {"alembic_version"}

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def _run(db: Database, action: str, revision: str, config: Config | None = None) -> None:
    config = config or alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with db.engine.connect() as connection:
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
        assert await _tables(db) == {"strategies", "backtests", "trades"}
        await _run(db, "upgrade", "004")
        assert await _tables(db) == TABLES
        assert head_revision() == "004"


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
    assert "004 (head)" in result.stdout


async def test_migrate_twice_is_harmless(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        await db.migrate()
        assert await _tables(db) == TABLES


REBUILD_PARENT = """
import sqlalchemy as sa
from alembic import op

revision = "900"
down_revision = "004"
branch_labels = None
depends_on = None


def _recreate() -> str:
    # A table rebuild, as SQLite's batch mode does for most ALTERs of a parent table.
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    with op.batch_alter_table("backtests", recreate=_recreate()) as batch:
        batch.alter_column("name", existing_type=sa.String(200), type_=sa.String(300))


def downgrade() -> None:
    with op.batch_alter_table("backtests", recreate=_recreate()) as batch:
        batch.alter_column("name", existing_type=sa.String(300), type_=sa.String(200))
"""


def _scripts_with_a_rebuild(tmp_path: Path) -> Path:
    scripts = tmp_path / "alembic"
    shutil.copytree(ROOT / "alembic", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "900_rebuild_backtests.py").write_text(REBUILD_PARENT)
    return scripts


async def test_rebuilding_a_parent_table_keeps_every_child_row(
    database_url: str, tmp_path: Path
) -> None:
    from .conftest import T0, make_fill

    config = alembic_config()
    config.set_main_option("script_location", str(_scripts_with_a_rebuild(tmp_path)))
    async with Database(database_url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        backtest = await db.backtests.create(
            strategy_id=strategy.id, name="b", start_date=T0, end_date=T0.replace(year=2025),
            initial_capital=1,
        )  # fmt: skip
        fills = [make_fill(strategy.id, n, backtest_id=backtest.id) for n in range(3000)]
        await db.trades.insert_many(fills)
        before = await db.trades.summary()

        await _run(db, "upgrade", "900", config)
        assert await db.trades.count(backtest_id=backtest.id) == 3000
        assert await db.trades.summary() == before
        await _run(db, "downgrade", "004", config)
        assert await db.trades.count(backtest_id=backtest.id) == 3000
        # The foreign keys are enforced again afterwards.
        with pytest.raises(NotFound):
            await db.trades.insert_many([make_fill(strategy.id, 9999, backtest_id=backtest.id + 1)])
