"""create backtests table

Revision ID: 002
Revises: 001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from quantflow_async.store.column_types import ExactDecimal, UTCDateTime, utc_now

revision: str = "002"
down_revision: str | None = "001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "backtests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("strategy_id", Id, nullable=False),
        sa.Column("config", Json, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("start_date", UTCDateTime(), nullable=False),
        sa.Column("end_date", UTCDateTime(), nullable=False),
        sa.Column("initial_capital", ExactDecimal(), nullable=False),
        sa.Column("metrics", Json, nullable=True),
        sa.Column("results", Json, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=utc_now()),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=utc_now()),
        sa.PrimaryKeyConstraint("id", name="pk_backtests"),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name="fk_backtests_strategy_id_strategies",
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("id", "strategy_id", name="uq_backtests_id_strategy_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
            name="ck_backtests_status_known",
        ),
        sa.CheckConstraint("start_date < end_date", name="ck_backtests_start_before_end"),
        sa.CheckConstraint(
            "CAST(initial_capital AS NUMERIC) > 0", name="ck_backtests_capital_positive"
        ),
    )
    op.create_index("ix_backtests_strategy_id_status", "backtests", ["strategy_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_backtests_strategy_id_status", table_name="backtests")
    op.drop_table("backtests")
