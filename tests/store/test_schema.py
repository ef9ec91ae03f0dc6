"""The migrated schema: every seed column, its defaults, its constraints, and exact storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError

from quantflow_async import Database
from quantflow_async.store.schema import metadata
from quantflow_async.validation import epoch_micros

from ..conftest import make_fill

SEED_COLUMNS = {
    "strategies": {
        "id", "name", "config", "description", "status", "metrics", "created_at", "updated_at",
    },
    "backtests": {
        "id", "name", "strategy_id", "config", "status", "start_date", "end_date",
        "initial_capital", "metrics", "results", "created_at", "updated_at",
    },
    "trades": {
        "id", "backtest_id", "strategy_id", "symbol", "side", "type", "quantity", "price", "fee",
        "executed_at", "status", "metadata", "pnl", "created_at", "updated_at",
    },
}  # fmt: skip


async def _columns(db: Database) -> dict[str, dict[str, dict[str, Any]]]:
    def read(connection: Connection) -> dict[str, dict[str, dict[str, Any]]]:
        inspector = inspect(connection)
        return {
            table: {column["name"]: column for column in inspector.get_columns(table)}
            for table in SEED_COLUMNS
        }

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def test_every_seed_column_exists_after_migration(db: Database) -> None:
    columns = await _columns(db)
    for table, expected in SEED_COLUMNS.items():
        assert expected <= set(columns[table]), f"{table} lacks {expected - set(columns[table])}"
    assert "external_id" in columns["trades"]


async def test_trade_backtest_id_is_nullable_for_live_trades(db: Database) -> None:
    columns = await _columns(db)
    assert columns["trades"]["backtest_id"]["nullable"] is True
    assert columns["trades"]["strategy_id"]["nullable"] is False


async def test_seed_defaults_apply_to_rows_inserted_without_them(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("INSERT INTO strategies (name) VALUES ('raw')"))
        row = (await conn.execute(text("SELECT status, config FROM strategies"))).one()
    strategy = await db.strategies.get_by_name("raw")
    assert row.status == "inactive"
    assert strategy.config == {}
    assert strategy.created_at.tzinfo is UTC
    assert abs(strategy.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_backtest_and_trade_status_defaults(
    db: Database, backtest_id: int, strategy_id: int
) -> None:
    assert (await db.backtests.get(backtest_id)).status == "pending"
    await db.trades.insert_many([make_fill(strategy_id, backtest_id=backtest_id)])
    (trade,) = await db.trades.list(backtest_id=backtest_id)
    assert (trade.status, trade.type) == ("filled", "market")


BAD_TRADES = {
    "side": "side = 'hold'",
    "quantity zero": "quantity = '0'",
    "quantity negative": "quantity = '-1'",
    "price negative": "price = '-0.01'",
    "status": "status = 'lost'",
    "strategy": "strategy_id = 999",
    "backtest": "backtest_id = 999",
}


@pytest.mark.parametrize("change", BAD_TRADES.values(), ids=BAD_TRADES.keys())
async def test_constraints_reject_bad_trade_rows(
    db: Database, strategy_id: int, backtest_id: int, change: str
) -> None:
    await db.trades.insert_many([make_fill(strategy_id, backtest_id=backtest_id)])
    # A copy of a valid row with one value made invalid, written with plain SQL.
    column, value = (part.strip() for part in change.split("="))
    columns = "backtest_id, strategy_id, symbol, side, quantity, price, executed_at, status"
    select = columns.replace(column, f"{value} AS {column}")
    with pytest.raises(IntegrityError):
        async with db.engine.begin() as conn:
            await conn.execute(text(f"INSERT INTO trades ({columns}) SELECT {select} FROM trades"))


async def test_backtest_must_belong_to_the_trades_strategy(
    db: Database, backtest_id: int, strategy_id: int
) -> None:
    other = await db.strategies.create(name="other")
    with pytest.raises(IntegrityError):
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO trades (backtest_id, strategy_id, symbol, side, quantity, price,"
                    " executed_at) SELECT id, :other, 'X', 'buy', '1', '1', start_date"
                    " FROM backtests"
                ),
                {"other": other.id},
            )


@pytest.mark.parametrize(
    "change",
    ["status = 'paused-ish'", "name = ''"],
    ids=["status", "empty name"],
)
async def test_constraints_reject_bad_strategy_rows(db: Database, change: str) -> None:
    column, value = (part.strip() for part in change.split("="))
    with pytest.raises(IntegrityError):
        async with db.engine.begin() as conn:
            names = "name" if column == "name" else "name, status"
            values = value if column == "name" else f"'s', {value}"
            await conn.execute(text(f"INSERT INTO strategies ({names}) VALUES ({values})"))


async def test_constraints_reject_backtest_with_end_before_start(
    db: Database, backtest_id: int
) -> None:
    with pytest.raises(IntegrityError):
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE backtests SET end_date = start_date"))


async def test_strategy_with_backtests_cannot_be_deleted_by_sql(
    db: Database, backtest_id: int
) -> None:
    with pytest.raises(IntegrityError):
        async with db.engine.begin() as conn:
            await conn.execute(text("DELETE FROM strategies"))


async def test_autogenerate_finds_no_difference_between_models_and_migrations(
    db: Database,
) -> None:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with db.engine.connect() as connection:
        assert await connection.run_sync(diff) == []


EXACT_VALUES = ["0.00000001", "123456789.123456789", "0", "99999999999999999999.999999999999999999"]


@pytest.mark.parametrize("value", EXACT_VALUES)
async def test_decimal_values_round_trip_exactly(
    db: Database, strategy_id: int, value: str
) -> None:
    fill = make_fill(strategy_id, quantity="1", price=value, fee=value, pnl=f"-{value}")
    await db.trades.insert_many([fill])
    (trade,) = await db.trades.list(strategy_id=strategy_id)
    assert trade.price == Decimal(value)
    assert trade.fee == Decimal(value)
    assert trade.pnl == Decimal(f"-{value}")  # unary minus would round to 28 digits
    assert isinstance(trade.price, Decimal)


async def test_datetimes_come_back_aware_utc(db: Database, strategy_id: int) -> None:
    tokyo = timezone(timedelta(hours=9))
    executed = datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=tokyo)
    await db.trades.insert_many([make_fill(strategy_id, executed_at=executed)])
    (trade,) = await db.trades.list()
    assert trade.executed_at == executed
    assert trade.executed_at.utcoffset() == timedelta(0)
    assert trade.executed_at.hour == 0
    assert trade.created_at.tzinfo is not None


async def test_updated_at_moves_on_update_and_created_at_does_not(
    db: Database, strategy_id: int
) -> None:
    # Both stamps set a year back, so an update that left updated_at alone would show it.
    year_ago = datetime.now(UTC) - timedelta(days=365)
    stored = epoch_micros(year_ago) if db.engine.dialect.name == "sqlite" else year_ago
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE strategies SET created_at = :at, updated_at = :at"), {"at": stored}
        )
    before = await db.strategies.get(strategy_id)
    assert before.updated_at == year_ago

    after = await db.strategies.update(strategy_id, description="tuned")
    assert after.created_at == before.created_at
    assert abs(after.updated_at - datetime.now(UTC)) < timedelta(minutes=1)
