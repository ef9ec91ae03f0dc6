"""The order journal's SQL outside its batches: the intent's own transaction, the reads that
rebuild the journal's memory of its orders, and who holds a venue order id (the batches are
store/journal_batch.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio
from sqlalchemy import Row as SqlRow
from sqlalchemy import Select, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from quantflow_async.errors import NotFound
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
from quantflow_async.store.journal_batch import DriverRow, statements_for
from quantflow_async.store.journal_fence import LeaseFence, check_fence
from quantflow_async.store.schema import journal_cursors, order_events, positions, strategies
from quantflow_async.store.schema import orders as orders_table
from quantflow_async.store.trade_insert import driver_connection


def order_record(row: SqlRow[Any]) -> Order:
    return Order(**row._mapping)


def event_record(row: SqlRow[Any]) -> OrderEvent:
    return OrderEvent(**row._mapping)


def position_record(row: SqlRow[Any]) -> Position:
    values = dict(row._mapping)
    del values["id"]
    return Position(**values)


def balance_record(row: SqlRow[Any]) -> BalanceSnapshot:
    return BalanceSnapshot(**row._mapping)


async def check_strategy(engine: AsyncEngine, strategy_id: int) -> None:
    """NotFound unless the strategy is stored."""
    with translated_errors(f"opening the journal of strategy {strategy_id}"):
        async with read_transaction(engine) as conn:
            found = await conn.scalar(select(strategies.c.id).where(strategies.c.id == strategy_id))
    if found is None:
        raise NotFound("strategy", strategy_id)


async def insert_intended(
    engine: AsyncEngine,
    order: dict[str, Any],
    event: DriverRow,
    *,
    row_error: Any,
    fence: LeaseFence | None = None,
) -> int:
    """Store a new order and its intent event (a driver row whose order_id is filled in
    here) in one transaction, once `fence` (the journal's lease) is checked; the order's id."""
    events = statements_for(engine.dialect.name).events
    with translated_errors(f"recording order {order['client_order_id']!r}", row_error=row_error):
        async with write_transaction(engine) as conn:
            await check_fence(conn, fence)
            order_id: int = (
                await conn.execute(insert(orders_table).values(order).returning(orders_table.c.id))
            ).scalar_one()
            await conn.exec_driver_sql(events, (order_id, *event[1:]))
    return order_id


@dataclass(frozen=True, slots=True)
class OrderMemory:
    """An order as stored, with what the state machine needs of its events."""

    order: Order
    seen: frozenset[str]
    fills: tuple[tuple[Decimal, Decimal], ...]
    """(quantity, price) of each fill."""


def _remembered(found: Sequence[SqlRow[Any]], facts: Sequence[Any]) -> list[OrderMemory]:
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
            found: Sequence[SqlRow[Any]] = []
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


_HOLDER_SQLITE = "SELECT client_order_id FROM orders WHERE venue = ? AND venue_order_id = ?"
_HOLDER_POSTGRES = "SELECT client_order_id FROM orders WHERE venue = $1 AND venue_order_id = $2"


class VenueIdHolders:
    """Which order, of any strategy, holds a venue order id on a venue: asked at every new
    venue id, on one connection kept for the purpose, one round trip and no transaction (a
    pooled connection per question cost four or five, measured by benchmarks/journal.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._query = _HOLDER_SQLITE if self._sqlite else _HOLDER_POSTGRES
        self._connection: AsyncConnection | None = None
        self._driver: Any = None

    async def holder(self, venue: str, venue_order_id: str) -> str | None:
        with translated_errors("reading an order of the journal"):
            try:
                if self._driver is None:
                    self._connection = await self._engine.connect()
                    self._driver = await driver_connection(self._connection)
                if self._sqlite:
                    found = await self._driver.execute_fetchall(
                        self._query, (venue, venue_order_id)
                    )
                    return None if not found else str(found[0][0])
                held: str | None = await self._driver.fetchval(self._query, venue, venue_order_id)
                return held
            except BaseException:
                await self.aclose(broken=True)  # a question cut short: the connection is in doubt
                raise

    async def aclose(self, *, broken: bool = False) -> None:
        """Give the connection back (dropped if `broken`), even when cancelled. Idempotent."""
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            with anyio.CancelScope(shield=True):
                if broken:
                    await connection.invalidate()
                await connection.close()
