"""create trades table

Revision ID: 003
Revises: 002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from quantflow_async.store.column_types import ExactDecimal, UTCDateTime, utc_now

revision: str = "003"
down_revision: str | None = "002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

INDEXES = {
    "ix_trades_backtest_id_executed_at": ["backtest_id", "executed_at"],
    "ix_trades_strategy_id_executed_at": ["strategy_id", "executed_at"],
    "ix_trades_symbol_executed_at": ["symbol", "executed_at"],
    "ix_trades_executed_at": ["executed_at"],
}


def upgrade() -> None:
    op.create_table(
        "trades",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("backtest_id", Id, nullable=True),
        sa.Column("strategy_id", Id, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("type", sa.String(32), nullable=False, server_default="market"),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=False),
        sa.Column("fee", ExactDecimal(), nullable=True),
        sa.Column("executed_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="filled"),
        sa.Column("metadata", Json, nullable=True),
        sa.Column("pnl", ExactDecimal(), nullable=True),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=utc_now()),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=utc_now()),
        sa.PrimaryKeyConstraint("id", name="pk_trades"),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name="fk_trades_strategy_id_strategies",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["backtest_id", "strategy_id"],
            ["backtests.id", "backtests.strategy_id"],
            name="fk_trades_backtest_id_strategy_id_backtests",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("external_id", name="uq_trades_external_id"),
        sa.CheckConstraint("side IN ('buy', 'sell')", name="ck_trades_side_known"),
        sa.CheckConstraint(
            "status IN ('filled', 'partially_filled', 'cancelled')",
            name="ck_trades_status_known",
        ),
        sa.CheckConstraint("CAST(quantity AS NUMERIC) > 0", name="ck_trades_quantity_positive"),
        sa.CheckConstraint("CAST(price AS NUMERIC) >= 0", name="ck_trades_price_not_negative"),
        sa.CheckConstraint("length(symbol) > 0", name="ck_trades_symbol_not_empty"),
    )
    for name, columns in INDEXES.items():
        op.create_index(name, "trades", columns)


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="trades")
    op.drop_table("trades")
