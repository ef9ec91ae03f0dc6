"""Backend fixtures: every backend-neutral test runs on SQLite and on the real PostgreSQL.

PostgreSQL tests run when QUANTFLOW_TEST_POSTGRES_URL names a server, for example
postgresql+asyncpg://postgres@127.0.0.1:5432/test. They skip without it, unless
QUANTFLOW_REQUIRE_POSTGRES=1 (as in CI), where a missing server fails the run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy.engine import make_url

from quantflow_async import Database, Fill, Settings
from tests.support.databases import migrated_file

# A run started in the background of a non-interactive shell (a CI script, `cmd &`) inherits
# SIGINT ignored, and every program the tests start would too: the tests that press Ctrl-C
# need it delivered. A handled signal goes back to its default in a program we exec.
signal.signal(signal.SIGINT, signal.default_int_handler)

POSTGRES_URL_ENV = "QUANTFLOW_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "QUANTFLOW_REQUIRE_POSTGRES"
T0 = datetime(2024, 1, 1, tzinfo=UTC)

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
POSTGRES_ROUND_IN_CI = pytest.mark.parametrize(
    "backend",
    ["sqlite", pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.slow])],
)
"""For a test that takes seconds on each backend: SQLite by default, PostgreSQL too in CI."""


def _server_url() -> str:
    """The test server's URL, or skip (fail in CI) with how to enable the tests."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        _unavailable(
            f"PostgreSQL tests need {POSTGRES_URL_ENV}, e.g. "
            "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        )
    return url


def _unavailable(message: str) -> NoReturn:
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(message)
    pytest.skip(message)


def postgres_dsn(url: str) -> str:
    """What asyncpg.connect takes for a SQLAlchemy PostgreSQL URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _on_server(url: str, *statements: str) -> None:
    import asyncpg

    async def run() -> None:
        try:
            connection = await asyncpg.connect(postgres_dsn(url), timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            _unavailable(f"PostgreSQL at {POSTGRES_URL_ENV} is unreachable: {exc}")
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def postgres_server_database() -> Iterator[str]:
    """A database of this test run's own on the test server, dropped when the run ends.

    Runs that share the server (two checkouts, CI beside a developer) never see each other's
    rows, and the server's own `test` database is left as it was.
    """
    server = _server_url()
    name = f"quantflow_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _on_server(server, f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        _on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reset_postgres(url: str) -> None:
    """Drop the library's tables so each test starts from an empty, unmigrated database."""
    _on_server(
        url,
        "DROP TABLE IF EXISTS trades, order_events, positions, balance_snapshots, "
        "journal_cursors, orders, backtests, sweeps, strategies, writer_batches, alembic_version "
        "CASCADE",
    )


# What a migration made on PostgreSQL, read from the catalog: the tables, indexes and sequences,
# their columns, constraints and triggers, and the revision. A test that changed any of it (a
# trigger that raises, a downgrade) leaves a database that is dropped and migrated again.
_SCHEMA_FINGERPRINT = """
SELECT md5(string_agg(item, ',' ORDER BY item)) FROM (
    SELECT 'class ' || c.relname || ' ' || c.relkind::text
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' '
        || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' '
        || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'trigger ' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT 'revision ' || version_num FROM alembic_version
) AS schema (item)
"""
# Deleting the few rows a test leaves takes a tenth of TRUNCATE's time (which makes new files
# for every table); foreign keys are not checked while every row goes.
_EMPTY_EVERY_TABLE = """
DO $$
DECLARE item record;
BEGIN
    SET LOCAL session_replication_role = replica;
    FOR item IN SELECT quote_ident(tablename) AS name FROM pg_tables
        WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
        EXECUTE 'DELETE FROM ' || item.name;
    END LOOP;
    FOR item IN SELECT quote_ident(sequencename) AS name FROM pg_sequences
        WHERE schemaname = 'public' LOOP
        EXECUTE 'ALTER SEQUENCE ' || item.name || ' RESTART';
    END LOOP;
END $$
"""
_migrated_schema: dict[str, str] = {}
"""The fingerprint of the schema `Database.migrate()` made, by database URL."""


def _emptied_if_migrated(url: str) -> bool:
    """Empty every table of the database at `url` if it holds the schema as migrated (ids
    start again at 1); False, touching nothing, if its schema is anything else."""
    import asyncpg

    async def run() -> bool:
        connection = await asyncpg.connect(postgres_dsn(url), timeout=10)
        try:
            fingerprint = await connection.fetchval(_SCHEMA_FINGERPRINT)
            if fingerprint != _migrated_schema.get(url):
                return False
            await connection.execute(_EMPTY_EVERY_TABLE)
            return True
        except asyncpg.UndefinedTableError:  # no alembic_version: not migrated
            return False
        finally:
            await connection.close()

    return asyncio.run(run())


def _migrated_postgres(url: str) -> None:
    """The database at `url` dropped to nothing and migrated, its schema's fingerprint kept."""
    import asyncpg

    reset_postgres(url)

    async def run() -> str:
        async with Database(settings=Settings(database_url=url)) as database:
            await database.migrate()
        connection = await asyncpg.connect(postgres_dsn(url), timeout=10)
        try:
            return str(await connection.fetchval(_SCHEMA_FINGERPRINT))
        finally:
            await connection.close()

    _migrated_schema[url] = asyncio.run(run())


@pytest.fixture(scope="session")
def migrated_sqlite_file() -> Path:
    """A SQLite file migrated to head once per run, for tests to start from a copy of."""
    return migrated_file()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL to an empty database of the backend under test: unmigrated, or, for a test that
    asks for `db` too, migrated (copied from a file migrated once, or a PostgreSQL schema
    emptied), which is many times quicker than migrating it for every test."""
    migrated = "db" in request.fixturenames
    if backend == "sqlite":
        path = tmp_path / "test.sqlite3"
        if migrated:
            shutil.copyfile(request.getfixturevalue("migrated_sqlite_file"), path)
        return f"sqlite+aiosqlite:///{path}"
    url = str(request.getfixturevalue("postgres_server_database"))
    if not migrated:
        reset_postgres(url)
    elif not _emptied_if_migrated(url):
        _migrated_postgres(url)
    return url


@pytest.fixture
def postgres_database_url(postgres_server_database: str) -> str:
    """A URL to an empty PostgreSQL database, for PostgreSQL-only tests."""
    reset_postgres(postgres_server_database)
    return postgres_server_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def migrated_sqlite_url(sqlite_url: str, tmp_path: Path, migrated_sqlite_file: Path) -> str:
    """`sqlite_url`, its file a copy of one migrated to head (quicker than migrating it)."""
    shutil.copyfile(migrated_sqlite_file, tmp_path / "test.sqlite3")
    return sqlite_url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """An open, migrated database of the backend under test."""
    async with Database(settings=Settings(database_url=database_url)) as database:
        await database.migrate()  # at head already: a check of a few milliseconds
        yield database


@pytest.fixture
async def strategy_id(db: Database) -> int:
    return (await db.strategies.create(name="sma-cross", config={"fast": 10, "slow": 30})).id


@pytest.fixture
async def backtest_id(db: Database, strategy_id: int) -> int:
    backtest = await db.backtests.create(
        strategy_id=strategy_id,
        name="2024 H1",
        start_date=T0,
        end_date=T0 + timedelta(days=180),
        initial_capital="10000",
    )
    return backtest.id


def make_fill(strategy_id: int, /, n: int = 0, **overrides: Any) -> Fill:
    """A valid fill; `n` spreads executed_at and makes external_id unique."""
    values: dict[str, Any] = {
        "strategy_id": strategy_id,
        "symbol": "BTCUSDT",
        "side": "buy" if n % 2 == 0 else "sell",
        "quantity": "0.5",
        "price": "42000.10",
        "executed_at": T0 + timedelta(seconds=n),
        "external_id": f"fill-{n}",
    }
    values.update(overrides)
    return Fill(**values)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("QUANTFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("QUANTFLOW_SQLITE_SYNCHRONOUS", raising=False)
    yield


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get(POSTGRES_URL_ENV):
        return f"PostgreSQL tests: on ({POSTGRES_URL_ENV} is set)"
    return (
        f"PostgreSQL tests: skipped; set {POSTGRES_URL_ENV}, "
        "e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
