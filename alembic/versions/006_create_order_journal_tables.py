"""create the order journal's tables

orders, order_events, positions, balance_snapshots and journal_cursors, and trades.order_id
(the order a live fill executed). Names are written in full and marked final with op.f(), so
the naming convention is not applied to them a second time (see 005). On SQLite, trades is
rebuilt in batch mode to gain its foreign key, keeping every row.

Revision ID: 006
Revises: 005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from quantflow_async.store.column_types import ExactDecimal, UTCDateTime, utc_now

revision: str = "006"
down_revision: str | None = "005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ORDER_STATUSES = (
    "'intended', 'submitted', 'open', 'partially_filled', 'filled', 'cancelled', "
    "'rejected', 'expired', 'unknown'"
)
EVENT_KINDS = (
    "'intent', 'submitted', 'acknowledged', 'fill', 'cancel_requested', 'cancelled', "
    "'rejected', 'expired', 'status', 'refused'"
)
# Created in this order, dropped in the reverse one.
TABLES = ("orders", "order_events", "positions", "balance_snapshots", "journal_cursors")


def _id() -> sa.Column[int]:
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


def _strategy(table: str) -> tuple[sa.Column[int], sa.ForeignKeyConstraint]:
    return (
        sa.Column("strategy_id", Id, nullable=False),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name=op.f(f"fk_{table}_strategy_id_strategies"),
            ondelete="RESTRICT",
        ),
    )


def _stamp(name: str) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=False, server_default=utc_now())


def upgrade() -> None:
    op.create_table(
        "orders",
        _id(),
        *_strategy("orders"),
        sa.Column("backtest_id", Id, nullable=True),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("venue_order_id", sa.String(128), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("limit_price", ExactDecimal(), nullable=True),
        sa.Column("stop_price", ExactDecimal(), nullable=True),
        sa.Column("time_in_force", sa.String(8), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("filled_quantity", ExactDecimal(), nullable=False),
        sa.Column("average_price", ExactDecimal(), nullable=True),
        sa.Column("metadata", Json, nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.ForeignKeyConstraint(
            ["backtest_id"],
            ["backtests.id"],
            name=op.f("fk_orders_backtest_id_backtests"),
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
        sa.UniqueConstraint("venue", "venue_order_id", name=op.f("uq_orders_venue_venue_order_id")),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_orders_side_known")),
        sa.CheckConstraint(
            "type IN ('market', 'limit', 'stop', 'stop_limit')", name=op.f("ck_orders_type_known")
        ),
        sa.CheckConstraint(f"status IN ({ORDER_STATUSES})", name=op.f("ck_orders_status_known")),
        sa.CheckConstraint(
            "CAST(quantity AS NUMERIC) > 0", name=op.f("ck_orders_quantity_positive")
        ),
        sa.CheckConstraint(
            "CAST(filled_quantity AS NUMERIC) >= 0", name=op.f("ck_orders_filled_not_negative")
        ),
        sa.CheckConstraint(
            "CAST(filled_quantity AS NUMERIC) <= CAST(quantity AS NUMERIC)",
            name=op.f("ck_orders_filled_within_quantity"),
        ),
    )
    op.create_index(
        op.f("ix_orders_strategy_id_venue_status"), "orders", ["strategy_id", "venue", "status"]
    )
    op.create_index(op.f("ix_orders_symbol_status"), "orders", ["symbol", "status"])

    op.create_table(
        "order_events",
        _id(),
        sa.Column("order_id", Id, nullable=True),
        *_strategy("order_events"),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("event_key", sa.String(160), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("venue_event_id", sa.String(128), nullable=True),
        sa.Column("status_after", sa.String(20), nullable=True),
        sa.Column("quantity", ExactDecimal(), nullable=True),
        sa.Column("price", ExactDecimal(), nullable=True),
        sa.Column("fee", ExactDecimal(), nullable=True),
        sa.Column("fee_asset", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", Json, nullable=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=True),
        _stamp("recorded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_events_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("event_key", name=op.f("uq_order_events_event_key")),
        sa.CheckConstraint(f"kind IN ({EVENT_KINDS})", name=op.f("ck_order_events_kind_known")),
    )
    op.create_index(op.f("ix_order_events_order_id_id"), "order_events", ["order_id", "id"])

    op.create_table(
        "positions",
        _id(),
        *_strategy("positions"),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("average_price", ExactDecimal(), nullable=True),
        sa.Column("realized_pnl", ExactDecimal(), nullable=False),
        sa.Column("fees", ExactDecimal(), nullable=False),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
        sa.UniqueConstraint(
            "strategy_id", "venue", "symbol", name=op.f("uq_positions_strategy_id_venue_symbol")
        ),
    )

    op.create_table(
        "balance_snapshots",
        _id(),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("free", ExactDecimal(), nullable=False),
        sa.Column("locked", ExactDecimal(), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_balance_snapshots")),
        sa.UniqueConstraint(
            "venue", "asset", "taken_at", name=op.f("uq_balance_snapshots_venue_asset_taken_at")
        ),
    )

    op.create_table(
        "journal_cursors",
        _id(),
        *_strategy("journal_cursors"),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(128), nullable=False),
        sa.Column("last_id", sa.String(128), nullable=False),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_cursors")),
        sa.UniqueConstraint(
            "strategy_id",
            "venue",
            "stream",
            name=op.f("uq_journal_cursors_strategy_id_venue_stream"),
        ),
    )

    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("order_id", Id, nullable=True))
        batch.create_foreign_key(
            op.f("fk_trades_order_id_orders"), "orders", ["order_id"], ["id"], ondelete="RESTRICT"
        )
        batch.create_index(op.f("ix_trades_order_id"), ["order_id"])


def downgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.drop_index(op.f("ix_trades_order_id"))
        batch.drop_constraint(op.f("fk_trades_order_id_orders"), type_="foreignkey")
        batch.drop_column("order_id")
    op.drop_index(op.f("ix_order_events_order_id_id"), table_name="order_events")
    op.drop_index(op.f("ix_orders_symbol_status"), table_name="orders")
    op.drop_index(op.f("ix_orders_strategy_id_venue_status"), table_name="orders")
    for table in reversed(TABLES):
        op.drop_table(table)
