"""The order journal's SQL: the intent's own transaction, a batch's idempotent statements, and
the reads that rebuild the journal's memory of its orders.

Every statement of a batch can run twice with the same result (inserts skip what is stored,
updates and upserts write absolute values), so a batch whose commit outcome is unknown is
simply run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Row, Select, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from quantflow_async.order_records import (
    IN_DOUBT_STATUSES,
    OPEN_STATUSES,
    BalanceSnapshot,
    Order,
    OrderEvent,
    Position,
)
from quantflow_async.store.driver_errors import translated_errors
from quantflow_async.store.engine import read_transaction, write_transaction
from quantflow_async.store.schema import (
    balance_snapshots,
    journal_cursors,
    order_events,
    positions,
    trades,
)
from quantflow_async.store.schema import (
    orders as orders_table,
)

ORDER_CHANGES: Final = (
    "status",
    "filled_quantity",
    "average_price",
    "venue_order_id",
    "updated_at",
)
"""The columns of an order that its events change."""


def order_record(row: Row[Any]) -> Order:
    return Order(**row._mapping)


def event_record(row: Row[Any]) -> OrderEvent:
    return OrderEvent(**row._mapping)


def position_record(row: Row[Any]) -> Position:
    values = dict(row._mapping)
    del values["id"]
    return Position(**values)


def balance_record(row: Row[Any]) -> BalanceSnapshot:
    return BalanceSnapshot(**row._mapping)


@dataclass(slots=True)
class JournalRows:
    """What one batch writes. Orders, positions and cursors are keyed so that the latest
    values win: a batch writes each row's state after its last event."""

    events: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[int, str, str], dict[str, Any]] = field(default_factory=dict)
    cursors: dict[tuple[int, str, str], dict[str, Any]] = field(default_factory=dict)
    balances: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accepted fact and the rows it changes; any part may be absent."""

    event: dict[str, Any] | None = None
    order: dict[str, Any] | None = None
    trade: dict[str, Any] | None = None
    position: dict[str, Any] | None = None
    cursor: dict[str, Any] | None = None
    balances: tuple[dict[str, Any], ...] = ()

    def add_to(self, rows: JournalRows) -> None:
        if self.event is not None:
            rows.events.append(self.event)
        if self.order is not None:
            rows.orders[self.order["order_pk"]] = self.order
        if self.trade is not None:
            rows.trades.append(self.trade)
        if self.position is not None:
            p = self.position
            rows.positions[(p["strategy_id"], p["venue"], p["symbol"])] = p
        if self.cursor is not None:
            c = self.cursor
            rows.cursors[(c["strategy_id"], c["venue"], c["stream"])] = c
        rows.balances.extend(self.balances)


def order_change(order: Order) -> dict[str, Any]:
    """The parameters of the batch's order update that brings the row to `order`."""
    return {"order_pk": order.id, **{f"new_{name}": getattr(order, name) for name in ORDER_CHANGES}}


class JournalStatements:
    """The batch's statements in the dialect's own INSERT ... ON CONFLICT form."""

    def __init__(self, dialect_name: str) -> None:
        make = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
        self.events = make(order_events).on_conflict_do_nothing(index_elements=["event_key"])
        self.trades = make(trades).on_conflict_do_nothing(index_elements=["external_id"])
        self.balances = make(balance_snapshots).on_conflict_do_nothing(
            index_elements=["venue", "asset", "taken_at"]
        )
        upsert = make(positions)
        self.positions = upsert.on_conflict_do_update(
            index_elements=["strategy_id", "venue", "symbol"],
            set_={
                name: upsert.excluded[name]
                for name in ("quantity", "average_price", "realized_pnl", "fees", "updated_at")
            },
        )
        cursor = make(journal_cursors)
        self.cursors = cursor.on_conflict_do_update(
            index_elements=["strategy_id", "venue", "stream"],
            set_={name: cursor.excluded[name] for name in ("last_id", "updated_at")},
        )
        self.orders = (
            update(orders_table)
            .where(orders_table.c.id == bindparam("order_pk"))
            .values({name: bindparam(f"new_{name}") for name in ORDER_CHANGES})
        )

    async def write(self, conn: AsyncConnection, rows: JournalRows) -> None:
        """Run the batch in the caller's transaction; events first, as the facts."""
        if rows.events:
            await conn.execute(self.events, rows.events)
        if rows.orders:
            await conn.execute(self.orders, list(rows.orders.values()))
        if rows.trades:
            await conn.execute(self.trades, rows.trades)
        if rows.positions:
            await conn.execute(self.positions, list(rows.positions.values()))
        if rows.cursors:
            await conn.execute(self.cursors, list(rows.cursors.values()))
        if rows.balances:
            await conn.execute(self.balances, rows.balances)


async def insert_intended(
    engine: AsyncEngine,
    order: dict[str, Any],
    event: dict[str, Any],
    *,
    row_error: Any,
) -> int:
    """Store a new order and its intent event in one transaction; the order's id."""
    with translated_errors(f"recording order {order['client_order_id']!r}", row_error=row_error):
        async with write_transaction(engine) as conn:
            order_id: int = (
                await conn.execute(insert(orders_table).values(order).returning(orders_table.c.id))
            ).scalar_one()
            await conn.execute(insert(order_events).values({**event, "order_id": order_id}))
    return order_id


@dataclass(frozen=True, slots=True)
class OrderMemory:
    """An order as stored, with what the state machine needs of its events."""

    order: Order
    seen: frozenset[str]
    fills: tuple[tuple[Decimal, Decimal], ...]
    """(quantity, price) of each fill."""


def _remembered(found: Sequence[Row[Any]], facts: Sequence[Any]) -> list[OrderMemory]:
    seen: dict[int, set[str]] = {}
    fills: dict[int, list[tuple[Decimal, Decimal]]] = {}
    for order_id, kind, venue_event_id, quantity, price in facts:
        seen.setdefault(order_id, set()).add(venue_event_id)
        if kind == "fill":
            fills.setdefault(order_id, []).append((quantity, price))
    return [
        OrderMemory(
            order_record(row), frozenset(seen.get(row.id, ())), tuple(fills.get(row.id, ()))
        )
        for row in found
    ]


def _facts(order_ids: Any) -> Select[Any]:
    """The venue facts applied to the orders: what makes a re-delivery a duplicate."""
    return select(
        order_events.c.order_id,
        order_events.c.kind,
        order_events.c.venue_event_id,
        order_events.c.quantity,
        order_events.c.price,
    ).where(
        order_events.c.order_id.in_(order_ids),
        order_events.c.venue_event_id.is_not(None),
        order_events.c.kind != "refused",
    )


async def load_order(
    engine: AsyncEngine, *, client_order_id: str | None = None, venue_order_id: Any = None
) -> OrderMemory | None:
    """One order by client id, or by (venue, venue order id) given as a pair."""
    if client_order_id is not None:
        condition = orders_table.c.client_order_id == client_order_id
    else:
        venue, venue_id = venue_order_id
        condition = (orders_table.c.venue == venue) & (orders_table.c.venue_order_id == venue_id)
    with translated_errors("reading an order of the journal"):
        async with read_transaction(engine) as conn:
            found = (await conn.execute(select(orders_table).where(condition))).all()
            if not found:
                return None
            facts = (await conn.execute(_facts([found[0].id]))).all()
    return _remembered(found, facts)[0]


@dataclass(frozen=True, slots=True)
class StoredJournal:
    orders: list[OrderMemory]
    positions: list[Position]
    cursors: dict[str, str]


async def load_journal(
    engine: AsyncEngine, strategy_id: int, venue: str, *, with_orders: bool
) -> StoredJournal:
    """The orders a restarted journal must look after (with `with_orders`), its positions and
    cursors: index reads of the strategy's rows on the venue, never a scan of trades."""
    mine = (orders_table.c.strategy_id == strategy_id) & (orders_table.c.venue == venue)
    alive = mine & orders_table.c.status.in_(OPEN_STATUSES + IN_DOUBT_STATUSES)
    with translated_errors(f"restoring the journal of strategy {strategy_id} on {venue!r}"):
        async with read_transaction(engine) as conn:
            found: Sequence[Row[Any]] = []
            facts: Sequence[Any] = []
            if with_orders:
                query = select(orders_table).where(alive).order_by(orders_table.c.id)
                found = (await conn.execute(query)).all()
                facts = (await conn.execute(_facts(select(orders_table.c.id).where(alive)))).all()
            held = await conn.execute(
                select(positions).where(
                    positions.c.strategy_id == strategy_id, positions.c.venue == venue
                )
            )
            cursors = await conn.execute(
                select(journal_cursors.c.stream, journal_cursors.c.last_id).where(
                    journal_cursors.c.strategy_id == strategy_id, journal_cursors.c.venue == venue
                )
            )
            return StoredJournal(
                _remembered(found, facts),
                [position_record(row) for row in held],
                {stream: last_id for stream, last_id in cursors},
            )
