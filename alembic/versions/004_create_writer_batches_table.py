"""create writer_batches table: a token per committed writer batch, for exactly-once retries

Revision ID: 004
Revises: 003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quantflow_async.store.column_types import UTCDateTime

revision: str = "004"
down_revision: str | None = "003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "writer_batches",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("committed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token", name="pk_writer_batches"),
    )


def downgrade() -> None:
    op.drop_table("writer_batches")
