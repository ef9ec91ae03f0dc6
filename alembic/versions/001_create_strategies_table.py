"""create strategies table

Revision ID: 001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from quantflow_async.store.column_types import UTCDateTime, utc_now

revision: str = "001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "strategies",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", Json, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="inactive"),
        sa.Column("metrics", Json, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=utc_now()),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=utc_now()),
        sa.PrimaryKeyConstraint("id", name="pk_strategies"),
        sa.UniqueConstraint("name", name="uq_strategies_name"),
        sa.CheckConstraint(
            "status IN ('inactive', 'active', 'paused', 'archived')",
            name="ck_strategies_status_known",
        ),
        sa.CheckConstraint("length(name) > 0", name="ck_strategies_name_not_empty"),
    )


def downgrade() -> None:
    op.drop_table("strategies")
