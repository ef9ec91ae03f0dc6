"""index trades by strategy, symbol and time on live fills only, and by order where there is one

A sweep stores each backtest's fills one backtest after another, every one starting again at
the beginning of the period, so their keys in the (strategy_id, executed_at), (symbol,
executed_at) and (executed_at) indexes land all over those indexes: together with the order
index (null on every backtest fill) they were most of the cost of storing a sweep's fill
(benchmarks/trade_indexes.py). A backtest's fills are read by backtest, through
(backtest_id, executed_at), which stays whole. So the three indexes now hold live fills only
(`WHERE backtest_id IS NULL`: reads say `live=True` to use them), and the order index only
fills that have an order; a whole index on strategy_id alone serves the strategy's foreign
key. The names stay; each index is dropped and made again, on SQLite and PostgreSQL alike,
keeping every row.

Revision ID: 008
Revises: 007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "008"
down_revision: str | None = "007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_FILLS = "backtest_id IS NULL"
HAVING_AN_ORDER = "order_id IS NOT NULL"
# (name, columns, which rows it holds from this revision on)
INDEXES = (
    ("ix_trades_strategy_id_executed_at", ["strategy_id", "executed_at"], LIVE_FILLS),
    ("ix_trades_symbol_executed_at", ["symbol", "executed_at"], LIVE_FILLS),
    ("ix_trades_executed_at", ["executed_at"], LIVE_FILLS),
    ("ix_trades_order_id", ["order_id"], HAVING_AN_ORDER),
)


def _remake(*, partial: bool) -> None:
    for name, columns, rows in INDEXES:
        where = {"sqlite_where": sa.text(rows), "postgresql_where": sa.text(rows)}
        op.drop_index(op.f(name), table_name="trades")
        op.create_index(op.f(name), "trades", columns, **(where if partial else {}))


# What a strategy's foreign key needs: deleting a strategy has the database look for its
# trades, and a partial index cannot serve that look. Its key is the same for every fill of a
# sweep, so each new one goes at its end.
BY_STRATEGY = "ix_trades_strategy_id"


def upgrade() -> None:
    _remake(partial=True)
    op.create_index(op.f(BY_STRATEGY), "trades", ["strategy_id"])


def downgrade() -> None:
    op.drop_index(op.f(BY_STRATEGY), table_name="trades")
    _remake(partial=False)
