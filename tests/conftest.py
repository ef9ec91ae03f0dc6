"""Backend fixtures: every backend-neutral test runs on SQLite and on the real PostgreSQL.

PostgreSQL tests run when QUANTFLOW_TEST_POSTGRES_URL names a server, for example
postgresql+asyncpg://postgres@127.0.0.1:5432/test. They skip without it, unless
QUANTFLOW_REQUIRE_POSTGRES=1 (as in CI), where a missing server fails the run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quantflow_async import Database, Fill, Settings

POSTGRES_URL_ENV = "QUANTFLOW_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "QUANTFLOW_REQUIRE_POSTGRES"
T0 = datetime(2024, 1, 1, tzinfo=UTC)

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def postgres_url() -> str:
    """The test server's URL, or skip (fail in CI) with how to enable the tests."""
    url = os.environ.get(POSTGRES_URL_ENV)
    required = os.environ.get(REQUIRE_POSTGRES_ENV) == "1"
    if not url:
        message = (
            f"PostgreSQL tests need {POSTGRES_URL_ENV}, e.g. "
            "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        )
        if required:
            pytest.fail(message)
        pytest.skip(message)
    return url


def reset_postgres(url: str) -> None:
    """Drop the library's tables so each test starts from an empty, unmigrated database."""
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def drop() -> None:
        try:
            connection = await asyncpg.connect(dsn, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            message = f"PostgreSQL at {POSTGRES_URL_ENV} is unreachable: {exc}"
            if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
                pytest.fail(message)
            pytest.skip(message)
        try:
            await connection.execute(
                "DROP TABLE IF EXISTS trades, backtests, strategies, alembic_version CASCADE"
            )
        finally:
            await connection.close()

    asyncio.run(drop())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> str:
    """A URL to an empty database of the backend under test."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    url = postgres_url()
    reset_postgres(url)
    return url


@pytest.fixture
def postgres_database_url() -> str:
    """A URL to the empty test PostgreSQL database, for PostgreSQL-only tests."""
    url = postgres_url()
    reset_postgres(url)
    return url


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
