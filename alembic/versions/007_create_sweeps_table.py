"""create the sweeps table; backtests gain sweep_id and job_key

A sweep records its strategy, its grid or search space, its constraint, its run options and
its data sets (by name and content fingerprint), with a status and timestamps. A backtest of
a sweep points to it (deleting the sweep deletes its backtests) with a job key, unique within
the sweep. Names are written in full and marked final with op.f() (see 005). On SQLite,
backtests is rebuilt in batch mode to gain its foreign key, keeping every row.

Revision ID: 007
Revises: 006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from quantflow_async.store.column_types import UTCDateTime, utc_now

revision: str = "007"
down_revision: str | None = "006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _stamp(name: str) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=False, server_default=utc_now())


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("strategy_id", Id, nullable=False),
        sa.Column("strategy", sa.String(1000), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("space", Json, nullable=False),
        sa.Column("constraints", sa.Text(), nullable=True),
        sa.Column("options", Json, nullable=False),
        sa.Column("datasets", Json, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="running"),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name=op.f("fk_sweeps_strategy_id_strategies"),
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint("kind IN ('grid', 'search')", name=op.f("ck_sweeps_kind_known")),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'interrupted')",
            name=op.f("ck_sweeps_status_known"),
        ),
    )
    op.create_index(op.f("ix_sweeps_strategy_id"), "sweeps", ["strategy_id"])
    with op.batch_alter_table("backtests") as batch:
        batch.add_column(sa.Column("sweep_id", Id, nullable=True))
        batch.add_column(sa.Column("job_key", sa.String(64), nullable=True))
        batch.create_foreign_key(
            op.f("fk_backtests_sweep_id_sweeps"), "sweeps", ["sweep_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_unique_constraint(
            op.f("uq_backtests_sweep_id_job_key"), ["sweep_id", "job_key"]
        )
        batch.create_index(op.f("ix_backtests_sweep_id_status"), ["sweep_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("backtests") as batch:
        batch.drop_index(op.f("ix_backtests_sweep_id_status"))
        batch.drop_constraint(op.f("uq_backtests_sweep_id_job_key"), type_="unique")
        batch.drop_constraint(op.f("fk_backtests_sweep_id_sweeps"), type_="foreignkey")
        batch.drop_column("job_key")
        batch.drop_column("sweep_id")
    op.drop_index(op.f("ix_sweeps_strategy_id"), table_name="sweeps")
    op.drop_table("sweeps")
