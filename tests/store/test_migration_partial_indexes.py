"""Revision 008: the strategy, symbol and time indexes on trades hold live fills only, the
order index fills that have an order; downgrading makes them whole again, keeping every row."""

from __future__ import annotations

from sqlalchemy import text

from quantflow_async import Database

from ..conftest import make_fill
from .test_migrations import _names_declared, _names_in_database, _run

PARTIAL = {
    "ix_trades_strategy_id_executed_at": "backtest_id IS NULL",
    "ix_trades_symbol_executed_at": "backtest_id IS NULL",
    "ix_trades_executed_at": "backtest_id IS NULL",
    "ix_trades_order_id": "order_id IS NOT NULL",
}


async def _index_conditions(db: Database) -> dict[str, str | None]:
    """Each index on trades with the rows it holds (its WHERE, normalised), None if all."""
    if db.engine.dialect.name == "sqlite":
        read = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'trades'"
    else:
        read = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'trades'"
    async with db.engine.connect() as connection:
        rows = (await connection.execute(text(read))).all()
    found: dict[str, str | None] = {}
    for name, definition in rows:
        _, where, condition = (definition or "").partition(" WHERE ")
        found[name] = condition.strip("() ").replace("(", "").replace(")", "") if where else None
    return found


async def test_upgrade_makes_four_trade_indexes_partial_and_downgrade_whole_again(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        await db.trades.insert_many([make_fill(strategy.id, n) for n in range(50)])
        conditions = await _index_conditions(db)
        for name, rows in PARTIAL.items():
            assert conditions[name] == rows, name
        assert conditions["ix_trades_backtest_id_executed_at"] is None

        await _run(db, "downgrade", "007")
        conditions = await _index_conditions(db)
        assert all(conditions[name] is None for name in PARTIAL)
        assert await db.trades.count(strategy_id=strategy.id) == 50

        await _run(db, "upgrade", "head")
        assert await db.trades.count(strategy_id=strategy.id, live=True) == 50
        assert await _names_in_database(db) == _names_declared()
