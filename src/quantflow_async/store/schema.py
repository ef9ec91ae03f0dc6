"""The tables of the QuantFlow database, as SQLAlchemy Core tables.

Delete rules, chosen on purpose:
- a strategy that still has backtests, trades or orders cannot be deleted (RESTRICT);
- deleting a backtest deletes its trades (CASCADE): a backtest's fills belong to it;
- deleting a sweep deletes its backtests (CASCADE), and so their trades;
- an order that has trades or events cannot be deleted (RESTRICT): the journal is append-only.
A trade's backtest must belong to the trade's strategy (composite foreign key).
The order journal's tables (orders, order_events, positions, balance_snapshots,
journal_cursors) are written by `OrderJournal` only; see live/orders.py for their meaning.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from quantflow_async.order_records import EVENT_KINDS, ORDER_STATUSES, ORDER_TYPES
from quantflow_async.store.column_types import ExactDecimal, UTCDateTime, utc_now
from quantflow_async.sweep_records import SWEEP_KINDS, SWEEP_STATUSES

# Constraints are named from their short names by this convention: name="side_known" on
# trades becomes ck_trades_side_known. Alembic applies it to the migrations' operations too,
# so a migration that writes a full name must mark it final with op.f(); revisions 001-003
# did not, their names came out doubled, and revision 005 renames them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# JSON documents: jsonb on PostgreSQL (indexable, compact), JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")
# 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the fast rowid alias.
Id = BigInteger().with_variant(Integer(), "sqlite")


def _timestamps() -> tuple[Column[object], Column[object]]:
    return (
        Column("created_at", UTCDateTime(), nullable=False, server_default=utc_now()),
        Column("updated_at", UTCDateTime(), nullable=False, server_default=utc_now()),
    )


LIVE_FILLS = "backtest_id IS NULL"
"""The trades that are live fills, as SQL: what the partial trade indexes hold."""


def _where(rows: str) -> dict[str, Any]:
    """The options of a partial index holding only `rows`, on both backends."""
    return {"sqlite_where": text(rows), "postgresql_where": text(rows)}


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


strategies = Table(
    "strategies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("config", Json, nullable=False, server_default=text("'{}'")),
    Column("description", Text, nullable=True),
    Column("status", String(20), nullable=False, server_default="inactive"),
    Column("metrics", Json, nullable=True),
    *_timestamps(),
    UniqueConstraint("name"),
    CheckConstraint("status IN ('inactive', 'active', 'paused', 'archived')", name="status_known"),
    CheckConstraint("length(name) > 0", name="name_not_empty"),
)

# One row per sweep; its backtests point back to it with their job key (revision 007).
sweeps = Table(
    "sweeps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("strategy_id", Id, ForeignKey("strategies.id", ondelete="RESTRICT"), nullable=False),
    Column("strategy", String(1000), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("name", String(200), nullable=True),
    Column("space", Json, nullable=False),
    Column("constraints", Text, nullable=True),
    Column("options", Json, nullable=False),
    Column("datasets", Json, nullable=False),
    Column("status", String(20), nullable=False, server_default="running"),
    *_timestamps(),
    Column("finished_at", UTCDateTime(), nullable=True),
    CheckConstraint(_one_of("kind", SWEEP_KINDS), name="kind_known"),
    CheckConstraint(_one_of("status", SWEEP_STATUSES), name="status_known"),
    Index(None, "strategy_id"),
)

backtests = Table(
    "backtests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column(
        "strategy_id",
        Id,
        ForeignKey("strategies.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("config", Json, nullable=False, server_default=text("'{}'")),
    Column("status", String(20), nullable=False, server_default="pending"),
    Column("start_date", UTCDateTime(), nullable=False),
    Column("end_date", UTCDateTime(), nullable=False),
    Column("initial_capital", ExactDecimal(), nullable=False),
    Column("metrics", Json, nullable=True),
    Column("results", Json, nullable=True),
    *_timestamps(),
    # Target of the trades' composite foreign key (a trade's backtest is its strategy's).
    UniqueConstraint("id", "strategy_id"),
    CheckConstraint(
        "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
        name="status_known",
    ),
    CheckConstraint("start_date < end_date", name="start_before_end"),
    CheckConstraint("CAST(initial_capital AS NUMERIC) > 0", name="capital_positive"),
    Index(None, "strategy_id", "status"),
    # The sweep it belongs to (null for a backtest run on its own) and its job key there;
    # deleting a sweep deletes its backtests, and their trades with them. Added by 007.
    Column("sweep_id", Id, ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=True),
    Column("job_key", String(64), nullable=True),
    UniqueConstraint("sweep_id", "job_key"),
    Index(None, "sweep_id", "status"),
)

trades = Table(
    "trades",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("backtest_id", Id, nullable=True),
    Column(
        "strategy_id",
        Id,
        ForeignKey("strategies.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("symbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(32), nullable=False, server_default="market"),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("price", ExactDecimal(), nullable=False),
    Column("fee", ExactDecimal(), nullable=True),
    Column("executed_at", UTCDateTime(), nullable=False),
    Column("status", String(20), nullable=False, server_default="filled"),
    Column("metadata", Json, nullable=True),
    Column("pnl", ExactDecimal(), nullable=True),
    Column("external_id", String(128), nullable=True),
    *_timestamps(),
    # The order a live fill executed (null for backtest fills); added by revision 006.
    Column("order_id", Id, ForeignKey("orders.id", ondelete="RESTRICT"), nullable=True),
    ForeignKeyConstraint(
        ["backtest_id", "strategy_id"],
        ["backtests.id", "backtests.strategy_id"],
        ondelete="CASCADE",
    ),
    # NULLs are distinct on both backends, so only fills that carry an id are deduplicated.
    UniqueConstraint("external_id"),
    CheckConstraint("side IN ('buy', 'sell')", name="side_known"),
    CheckConstraint("status IN ('filled', 'partially_filled', 'cancelled')", name="status_known"),
    CheckConstraint("CAST(quantity AS NUMERIC) > 0", name="quantity_positive"),
    CheckConstraint("CAST(price AS NUMERIC) >= 0", name="price_not_negative"),
    CheckConstraint("length(symbol) > 0", name="symbol_not_empty"),
    Index(None, "backtest_id", "executed_at"),
    # Live fills only (revision 008): a sweep's fills would land all over these indexes, and
    # are read by backtest. A read uses them when it says `backtest_id IS NULL`.
    Index(None, "strategy_id", "executed_at", **_where(LIVE_FILLS)),
    Index(None, "symbol", "executed_at", **_where(LIVE_FILLS)),
    Index(None, "executed_at", **_where(LIVE_FILLS)),
    Index(None, "order_id", **_where("order_id IS NOT NULL")),
    # Whole, for the strategy's foreign key: deleting a strategy looks its trades up here.
    Index(None, "strategy_id"),
)

# One row per batch a TradeWriter committed, written in the batch's own transaction: after a
# connection broke between COMMIT and its reply, the token tells whether the batch is stored.
# Each writer deletes its previous token with its next batch; leftovers of writers that died
# are pruned after a day.
writer_batches = Table(
    "writer_batches",
    metadata,
    Column("token", String(64), primary_key=True),
    Column("inserted", Integer, nullable=False),
    Column("committed_at", UTCDateTime(), nullable=False),
)


# -- the order journal ------------------------------------------------------------------------


def _strategy_id() -> Column[object]:
    return Column(
        "strategy_id", Id, ForeignKey("strategies.id", ondelete="RESTRICT"), nullable=False
    )


orders = Table(
    "orders",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _strategy_id(),
    Column("backtest_id", Id, ForeignKey("backtests.id", ondelete="RESTRICT"), nullable=True),
    Column("venue", String(64), nullable=False),
    Column("client_order_id", String(64), nullable=False),
    Column("venue_order_id", String(128), nullable=True),
    Column("symbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(16), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("limit_price", ExactDecimal(), nullable=True),
    Column("stop_price", ExactDecimal(), nullable=True),
    Column("time_in_force", String(8), nullable=True),
    Column("status", String(20), nullable=False),
    Column("filled_quantity", ExactDecimal(), nullable=False),
    Column("average_price", ExactDecimal(), nullable=True),
    Column("metadata", Json, nullable=True),
    *_timestamps(),
    UniqueConstraint("client_order_id"),
    # NULLs are distinct: an order the venue has not acknowledged yet has no id there.
    UniqueConstraint("venue", "venue_order_id"),
    CheckConstraint("side IN ('buy', 'sell')", name="side_known"),
    CheckConstraint(_one_of("type", ORDER_TYPES), name="type_known"),
    CheckConstraint(_one_of("status", ORDER_STATUSES), name="status_known"),
    CheckConstraint("CAST(quantity AS NUMERIC) > 0", name="quantity_positive"),
    CheckConstraint("CAST(filled_quantity AS NUMERIC) >= 0", name="filled_not_negative"),
    CheckConstraint(
        "CAST(filled_quantity AS NUMERIC) <= CAST(quantity AS NUMERIC)",
        name="filled_within_quantity",
    ),
    Index(None, "strategy_id", "venue", "status"),
    Index(None, "symbol", "status"),
)

order_events = Table(
    "order_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Null for a refused event about an order the journal does not know.
    Column("order_id", Id, ForeignKey("orders.id", ondelete="RESTRICT"), nullable=True),
    _strategy_id(),
    Column("venue", String(64), nullable=False),
    # "{venue}:{venue_event_id}" for a venue's fact (a re-delivery conflicts and is skipped),
    # "{venue}:local:{uuid hex}" for one of ours.
    Column("event_key", String(160), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("venue_event_id", String(128), nullable=True),
    Column("status_after", String(20), nullable=True),
    Column("quantity", ExactDecimal(), nullable=True),
    Column("price", ExactDecimal(), nullable=True),
    Column("fee", ExactDecimal(), nullable=True),
    Column("fee_asset", String(32), nullable=True),
    Column("reason", Text, nullable=True),
    Column("details", Json, nullable=True),
    Column("occurred_at", UTCDateTime(), nullable=True),
    Column("recorded_at", UTCDateTime(), nullable=False, server_default=utc_now()),
    UniqueConstraint("event_key"),
    CheckConstraint(_one_of("kind", EVENT_KINDS), name="kind_known"),
    Index(None, "order_id", "id"),
)

positions = Table(
    "positions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _strategy_id(),
    Column("venue", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    # Signed: negative is short.
    Column("quantity", ExactDecimal(), nullable=False),
    Column("average_price", ExactDecimal(), nullable=True),
    Column("realized_pnl", ExactDecimal(), nullable=False),
    Column("fees", ExactDecimal(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False, server_default=utc_now()),
    UniqueConstraint("strategy_id", "venue", "symbol"),
)

# Unique rather than only indexed, so that a batch retried after an unknown outcome does not
# store the same snapshot twice.
balance_snapshots = Table(
    "balance_snapshots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("venue", String(64), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("free", ExactDecimal(), nullable=False),
    Column("locked", ExactDecimal(), nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
    UniqueConstraint("venue", "asset", "taken_at"),
)

journal_cursors = Table(
    "journal_cursors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _strategy_id(),
    Column("venue", String(64), nullable=False),
    Column("stream", String(128), nullable=False),
    Column("last_id", String(128), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False, server_default=utc_now()),
    UniqueConstraint("strategy_id", "venue", "stream"),
)
