"""Alembic: upgrade, downgrade and upgrade again, from the library and from the command line."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.exc import IntegrityError

from quantflow_async import Database, NotFound
from quantflow_async.store import alembic_turn as alembic_turn_module
from quantflow_async.store.alembic_turn import MIGRATION_LOCK, alembic_turn
from quantflow_async.store.migrations import alembic_config, head_revision
from quantflow_async.store.repositories.sweeps import JobRow
from quantflow_async.store.schema import metadata

from ..conftest import T0, make_fill, postgres_dsn

ROOT = Path(__file__).resolve().parents[2]
SEED_TABLES = {"strategies", "backtests", "trades", "writer_batches"}
JOURNAL_TABLES = {"orders", "order_events", "positions", "balance_snapshots", "journal_cursors"}
TABLES = SEED_TABLES | JOURNAL_TABLES | {"sweeps"}


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
        assert await _tables(db) == SEED_TABLES
        await _run(db, "upgrade", "005")
        assert await _tables(db) == SEED_TABLES
        await _run(db, "upgrade", "006")
        assert await _tables(db) == SEED_TABLES | JOURNAL_TABLES
        await _run(db, "upgrade", "007")
        assert await _tables(db) == TABLES
        await _run(db, "upgrade", "008")
        assert await _tables(db) == TABLES
        assert head_revision() == "008"


@pytest.mark.slow  # the alembic command, four times in new processes
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
    assert "008 (head)" in result.stdout


async def test_migrate_twice_is_harmless(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        await db.migrate()
        assert await _tables(db) == TABLES


async def test_migrate_returns_the_revision_the_schema_was_at(database_url: str) -> None:
    async with Database(database_url) as db:
        assert await db.migrate() is None  # nothing had migrated it
        assert await db.migrate() == head_revision()
        await _run(db, "downgrade", "007")
        assert await db.migrate() == "007"
        assert await _tables(db) == TABLES


REBUILD_PARENT = """
import sqlalchemy as sa
from alembic import op

revision = "900"
down_revision = "008"
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


def _scripts_with(tmp_path: Path, revisions: dict[str, str]) -> Config:
    """A config whose scripts are ours plus `revisions` (file name: text), copied under tmp."""
    scripts = tmp_path / "alembic"
    shutil.copytree(ROOT / "alembic", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    for name, script in revisions.items():
        (scripts / "versions" / name).write_text(script)
    config = alembic_config()
    config.set_main_option("script_location", str(scripts))
    return config


EMPTY_REVISION = """
revision = "{name}"
down_revision = "008"
branch_labels = None
depends_on = None
upgrade = downgrade = lambda: None
"""


async def test_a_branched_history_migrates_again_and_reads_back_both_heads(
    database_url: str, tmp_path: Path
) -> None:
    branches = {f"{name}_branch.py": EMPTY_REVISION.format(name=name) for name in ("901", "902")}
    config = _scripts_with(tmp_path, branches)
    async with Database(database_url) as db:
        await _run(db, "upgrade", "heads", config)
        await _run(db, "upgrade", "heads", config)  # reads the two heads it is at
        assert set(config.attributes["revision_before"].split(", ")) == {"901", "902"}


async def test_rebuilding_a_parent_table_keeps_every_child_row(
    database_url: str, tmp_path: Path
) -> None:
    config = _scripts_with(tmp_path, {"900_rebuild_backtests.py": REBUILD_PARENT})
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
        await _run(db, "downgrade", "008", config)
        assert await db.trades.count(backtest_id=backtest.id) == 3000
        # The foreign keys are enforced again afterwards.
        with pytest.raises(NotFound):
            await db.trades.insert_many([make_fill(strategy.id, 9999, backtest_id=backtest.id + 1)])


def _constraint_and_index_names(
    connection: Connection, tables: set[str] = TABLES
) -> dict[str, set[str]]:
    inspector = inspect(connection)
    found: dict[str, set[str]] = {}
    for table in tables:
        names = {inspector.get_pk_constraint(table)["name"]}
        names |= {c["name"] for c in inspector.get_check_constraints(table)}
        names |= {c["name"] for c in inspector.get_unique_constraints(table)}
        names |= {c["name"] for c in inspector.get_foreign_keys(table)}
        names |= {i["name"] for i in inspector.get_indexes(table)}
        found[table] = names
    return found


async def _names_in_database(db: Database, tables: set[str] = TABLES) -> dict[str, set[str]]:
    async with db.engine.connect() as connection:
        return await connection.run_sync(_constraint_and_index_names, tables)


def _names_declared() -> dict[str, set[str]]:
    return {
        table.name: {str(c.name) for c in table.constraints} | {str(i.name) for i in table.indexes}
        for table in metadata.sorted_tables
    }


async def test_constraint_names_in_the_database_are_the_ones_the_schema_declares(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        names = await _names_in_database(db)
    assert names == _names_declared()
    assert "ck_trades_side_known" in names["trades"]


async def test_downgrade_to_004_brings_back_the_old_names_and_keeps_every_row(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        await db.trades.insert_many([make_fill(strategy.id, n) for n in range(50)])

        await _run(db, "downgrade", "004")
        old = await _names_in_database(db, SEED_TABLES)
        assert "ck_trades_ck_trades_side_known" in old["trades"]
        assert await db.trades.count() == 50

        await _run(db, "upgrade", "head")
        assert await _names_in_database(db) == _names_declared()
        assert await db.trades.count() == 50


async def test_the_renamed_checks_still_refuse_bad_rows(db: Database, strategy_id: int) -> None:
    with pytest.raises(IntegrityError, match="ck_trades_side_known|CHECK constraint failed"):
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO trades (strategy_id, symbol, side, quantity, price, executed_at)"
                    " VALUES (:id, 'X', 'hold', '1', '1', :at)"
                ),
                {"id": strategy_id, "at": 0 if db.engine.dialect.name == "sqlite" else T0},
            )


async def _alembic(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        *arguments,
        cwd=ROOT,
        env={**os.environ, "QUANTFLOW_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        list(arguments), process.returncode, stdout.decode(), stderr.decode()
    )


@pytest.mark.slow  # six Alembic processes against a writer that never pauses
async def test_alembic_command_waits_for_the_write_lock_while_a_writer_ingests(
    sqlite_url: str,
) -> None:
    # A deferred BEGIN read the schema, then failed with "database is locked" when a writer
    # committed before Alembic's first write; BEGIN IMMEDIATE waits for the lock instead.
    async with Database(sqlite_url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        stop = asyncio.Event()
        committed = asyncio.Event()

        async def ingest() -> int:
            batches = 0
            while not stop.is_set():
                start = batches * 50
                await db.trades.insert_many(
                    [make_fill(strategy.id, n) for n in range(start, start + 50)]
                )
                batches += 1
                committed.set()
            return batches

        writer = asyncio.create_task(ingest())
        try:
            for _ in range(3):
                for command_line in (("downgrade", "004"), ("upgrade", "head")):
                    committed.clear()
                    await asyncio.wait_for(committed.wait(), timeout=30)  # the writer is live
                    result = await _alembic(sqlite_url, *command_line)
                    assert result.returncode == 0, result.stderr
                    assert "locked" not in result.stderr
        finally:
            stop.set()
            batches = await writer
        assert await db.trades.count() == batches * 50


async def _trade_columns(db: Database) -> set[str]:
    def read(connection: Connection) -> set[str]:
        return {column["name"] for column in inspect(connection).get_columns("trades")}

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def test_downgrade_from_006_drops_the_journal_and_keeps_every_other_row(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        await db.trades.insert_many([make_fill(strategy.id, n) for n in range(200)])
        before = await db.trades.summary()

        await _run(db, "downgrade", "005")
        assert await _tables(db) == SEED_TABLES
        assert "order_id" not in await _trade_columns(db)
        assert await db.trades.summary() == before
        assert (await db.strategies.get(strategy.id)).name == "s"

        await _run(db, "upgrade", "head")
        assert await _tables(db) == TABLES
        assert "order_id" in await _trade_columns(db)
        assert await db.trades.summary() == before
        assert await _names_in_database(db) == _names_declared()


async def test_downgrade_from_007_drops_the_sweeps_and_keeps_every_backtest(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        sweep, (backtest_id,) = await db.sweeps.create(
            strategy_id=strategy.id, strategy="sma_cross", space={"fast": [2]}, options={},
            datasets=[], jobs=[_job_row()],
        )  # fmt: skip
        await db.trades.insert_many([make_fill(strategy.id, n, backtest_id=backtest_id)
                                     for n in range(20)])  # fmt: skip

        await _run(db, "downgrade", "006")
        assert await _tables(db) == TABLES - {"sweeps"}
        async with db.engine.connect() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM backtests"))
        assert count == 1
        assert await db.trades.count(backtest_id=backtest_id) == 20

        await _run(db, "upgrade", "head")
        assert (await db.backtests.get(backtest_id)).sweep_id is None
        assert await _names_in_database(db) == _names_declared()


def _job_row() -> JobRow:
    return JobRow(
        job_key="k", name="b", start_date=T0, end_date=T0.replace(year=2025),
        initial_capital=1, config={},
    )  # fmt: skip


async def test_migrations_started_at_once_run_one_after_the_other(database_url: str) -> None:
    # Each Database has its own connections: the second migration waits for the first to
    # commit, then finds the newest schema and has nothing to do.
    async with Database(database_url) as first, Database(database_url) as second:
        befores = await asyncio.gather(first.migrate(), second.migrate())
        assert sorted(befores, key=str) == sorted([None, head_revision()], key=str)
        assert await _tables(first) == TABLES
        await _run(first, "downgrade", "007")
        befores = await asyncio.gather(first.migrate(), second.migrate(), first.migrate())
        assert sorted(befores, key=str) == ["007", head_revision(), head_revision()]


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read", "serializable"])
async def test_migrating_processes_wait_for_each_other_on_postgresql(
    postgres_database_url: str, isolation: str
) -> None:
    # Whatever the database's default isolation: a snapshot taken at the wait would show the
    # second migration the schema as it was before the first one.
    connection = await asyncpg.connect(postgres_dsn(postgres_database_url))
    database = await connection.fetchval("SELECT current_database()")
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    command = [sys.executable, "-m", "quantflow_async.cli", "--database-url"]
    processes: list[asyncio.subprocess.Process] = []
    try:
        await connection.execute(
            f"ALTER DATABASE \"{database}\" SET default_transaction_isolation = '{isolation}'"
        )
        # Held here first, so that both processes are surely waiting when it is let go.
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        for _ in range(2):
            processes.append(
                await asyncio.create_subprocess_exec(
                    *command,
                    postgres_database_url,
                    "migrate",
                    cwd=ROOT,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
            )
        async with asyncio.timeout(60):
            while await connection.fetchval(waiting) < 2:
                if any(process.returncode is not None for process in processes):
                    outputs = [await process.communicate() for process in processes]
                    pytest.fail(f"a migration did not wait for the other: {outputs}")
                await asyncio.sleep(0.05)
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        outputs = [await process.communicate() for process in processes]
    finally:
        await connection.execute(f'ALTER DATABASE "{database}" RESET default_transaction_isolation')
        await connection.close()
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert [process.returncode for process in processes] == [0, 0], outputs
    said = sorted(stdout.decode() for stdout, _ in outputs)
    assert said[0].startswith("migrated ") and "to the newest schema" in said[0], outputs
    assert "at the newest schema already" in said[1], outputs


def test_migrations_on_event_loops_of_their_own_in_threads_take_turns(tmp_path: Path) -> None:
    urls = [f"sqlite+aiosqlite:///{tmp_path / f'{i}.sqlite3'}" for i in range(4)]

    async def migrate(url: str) -> str | None:
        async with Database(url) as db:
            return await db.migrate()

    with ThreadPoolExecutor(len(urls)) as threads:
        befores = list(threads.map(lambda url: asyncio.run(migrate(url)), urls))
    assert befores == [None] * len(urls)


async def test_a_migration_whose_event_loop_was_closed_under_it_gives_up_its_turn() -> None:
    # A loop closed with the run still in it (a notebook, a stopped thread's loop): that run
    # can never finish, and must not hold every later migration of the process forever.
    abandoned = asyncio.new_event_loop()
    holding = asyncio.Event()

    async def hold_forever() -> None:
        async with alembic_turn():
            holding.set()
            await asyncio.Event().wait()

    def run_then_close() -> None:
        task = abandoned.create_task(hold_forever())
        abandoned.run_until_complete(holding.wait())
        assert not task.done()
        abandoned.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(run_then_close).result()
    async with asyncio.timeout(10), alembic_turn():
        pass


async def test_a_migration_waiting_long_for_its_turn_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(alembic_turn_module, "WAIT_WARNING_SECONDS", 0.05)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with alembic_turn():
            entered.set()
            await release.wait()

    holder = asyncio.ensure_future(hold())
    await entered.wait()
    waiter = asyncio.ensure_future(_enter_and_leave())
    await asyncio.sleep(0.3)
    assert not waiter.done()
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiter), 10)
    assert "a migration has waited" in caplog.text


async def _enter_and_leave() -> None:
    async with alembic_turn():
        pass


@pytest.mark.slow  # a migration for each of its statements
async def test_a_migration_cancelled_at_any_statement_raises_the_cancellation(
    database_url: str,
) -> None:
    # Alembic runs in SQLAlchemy's sync code; a statement cancelled there leaves its
    # transaction to roll back, and the next one failed with PendingRollbackError, which
    # came out as a MigrationError rather than the caller's own cancellation.
    async with Database(database_url) as db:
        at = 1
        while (statements := await _migrate_cancelled_at_statement(db, at)) is None:
            at += 1  # cancelled, and rolled back: the next run starts from nothing again
        assert at > statements  # the last run went through every statement uncancelled
        assert await _tables(db) == TABLES


async def _migrate_cancelled_at_statement(db: Database, at: int) -> int | None:
    """Migrate, cancelled as the `at`-th statement starts: None if the cancellation came
    out of migrate(), else how many statements it ran."""
    statements = 0
    migrating = asyncio.ensure_future(db.migrate())

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1
        if statements == at:
            migrating.cancel()

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        await migrating
    except asyncio.CancelledError:
        return None
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    return statements
