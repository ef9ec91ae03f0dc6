"""Backend fixtures: every backend-neutral test runs on SQLite and on the real PostgreSQL.

PostgreSQL tests run when QUANTFLOW_TEST_POSTGRES_URL names a server, for example
postgresql+asyncpg://postgres@127.0.0.1:5432/test. They skip without it, unless
QUANTFLOW_REQUIRE_POSTGRES=1 (as in CI), where a missing server fails the run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy.engine import make_url

from quantflow_async import Database, Fill, Settings

# A run started in the background of a non-interactive shell (a CI script, `cmd &`) inherits
# SIGINT ignored, and every program the tests start would too: the tests that press Ctrl-C
# need it delivered. A handled signal goes back to its default in a program we exec.
signal.signal(signal.SIGINT, signal.default_int_handler)

POSTGRES_URL_ENV = "QUANTFLOW_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "QUANTFLOW_REQUIRE_POSTGRES"
T0 = datetime(2024, 1, 1, tzinfo=UTC)

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


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


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _on_server(url: str, *statements: str) -> None:
    import asyncpg

    async def run() -> None:
        try:
            connection = await asyncpg.connect(_dsn(url), timeout=10)
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


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL to an empty database of the backend under test."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    url = str(request.getfixturevalue("postgres_server_database"))
    reset_postgres(url)
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
async def db(database_url: str) -> AsyncIterator[Database]:
    """An open, migrated database of the backend under test."""
    async with Database(settings=Settings(database_url=database_url)) as database:
        await database.migrate()
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
