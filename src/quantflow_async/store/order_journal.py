"""The order journal's SQL: the intent's own transaction, a batch's idempotent statements, and
the reads that rebuild the journal's memory of its orders.

Every statement of a batch can run twice with the same result (inserts skip what is stored,
updates and upserts write absolute values), so a batch whose commit outcome is unknown is
simply run again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, Final, NamedTuple, TypeAlias

import anyio
from sqlalchemy import Row as SqlRow
from sqlalchemy import Select, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from quantflow_async.order_records import (
    IN_DOUBT_STATUSES,
    OPEN_STATUSES,
    BalanceSnapshot,
    Order,
    OrderEvent,
    Position,
)
from quantflow_async.records import TRADE_INSERT_COLUMNS
from quantflow_async.store.driver_errors import translated_errors
from quantflow_async.store.engine import read_transaction, write_transaction
from quantflow_async.store.schema import journal_cursors, order_events, positions
from quantflow_async.store.schema import orders as orders_table
from quantflow_async.store.trade_insert import driver_connection
from quantflow_async.validation import decimal_text, epoch_micros

ORDER_CHANGES: Final = (
    "status",
    "filled_quantity",
    "average_price",
    "venue_order_id",
    "updated_at",
)
"""The columns of an order that its events change."""


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


EVENT_COLUMNS: Final = (
    "order_id", "strategy_id", "venue", "event_key", "kind", "venue_event_id", "status_after",
    "quantity", "price", "fee", "fee_asset", "reason", "details", "occurred_at", "recorded_at",
)  # fmt: skip
TRADE_COLUMNS: Final = (*TRADE_INSERT_COLUMNS, "order_id")
POSITION_COLUMNS: Final = (
    "strategy_id", "venue", "symbol", "quantity", "average_price", "realized_pnl", "fees",
    "updated_at",
)  # fmt: skip
CURSOR_COLUMNS: Final = ("strategy_id", "venue", "stream", "last_id", "updated_at")
BALANCE_COLUMNS: Final = ("venue", "asset", "free", "locked", "taken_at")
ORDER_UPDATE_COLUMNS: Final = (*ORDER_CHANGES, "id")
"""The order of the values in each driver row of a batch (an order's row ends with its id)."""


class DriverForm:
    """How a backend's driver takes the journal's values: on SQLite decimals as the store's
    text, instants as epoch microseconds; on asyncpg Decimal and datetime as they are. JSON
    is text on both."""

    __slots__ = ("decimal", "instant")

    def __init__(self, dialect_name: str) -> None:
        sqlite_form = dialect_name == "sqlite"
        self.decimal: Callable[[Decimal], Any] = decimal_text if sqlite_form else _same
        self.instant: Callable[[datetime], Any] = epoch_micros if sqlite_form else _same


def _same(value: Any) -> Any:
    return value


def json_text(document: Mapping[str, Any] | None) -> str | None:
    """The journal's own JSON documents (ids, names, decimal text), as compact text."""
    return None if document is None else _compact_json(document)


_compact_json: Final = json.JSONEncoder(separators=(",", ":")).encode


DriverRow: TypeAlias = tuple[Any, ...]


@dataclass(slots=True)
class JournalRows:
    """What one batch writes, as driver rows. Orders, positions and cursors are keyed so that
    the latest values win: a batch writes each row's state after its last event."""

    events: list[DriverRow] = field(default_factory=list)
    orders: dict[Any, DriverRow] = field(default_factory=dict)
    orders_keeping_venue_id: dict[Any, DriverRow] = field(default_factory=dict)
    """Order updates that leave the stored venue order id as it is (ORDER_KEEPING_COLUMNS)."""
    trades: list[DriverRow] = field(default_factory=list)
    positions: dict[DriverRow, DriverRow] = field(default_factory=dict)
    cursors: dict[DriverRow, DriverRow] = field(default_factory=dict)
    balances: list[DriverRow] = field(default_factory=list)


class JournalEntry(NamedTuple):
    """One accepted fact and the driver rows it changes (see the *_COLUMNS above); any part
    may be absent. `claim` is the venue order id the order change gives its order for the
    first time: whether another order holds it is asked in the batch's transaction."""

    event: DriverRow | None = None
    order: DriverRow | None = None
    trade: DriverRow | None = None
    position: DriverRow | None = None
    cursor: DriverRow | None = None
    balances: tuple[DriverRow, ...] = ()
    claim: str | None = None

    def add_to(self, rows: JournalRows) -> None:
        event, order, trade, position, cursor, balances, _ = self
        if event is not None:
            rows.events.append(event)
        if order is not None:
            rows.orders[order[-1]] = order
        if trade is not None:
            rows.trades.append(trade)
        if position is not None:
            rows.positions[position[:3]] = position
        if cursor is not None:
            rows.cursors[cursor[:3]] = cursor
        if balances:
            rows.balances.extend(balances)


def order_change(order: Order, form: DriverForm) -> DriverRow:
    """The driver row of the batch's order update that brings the row to `order`."""
    average = order.average_price
    return (
        order.status,
        form.decimal(order.filled_quantity),
        None if average is None else form.decimal(average),
        order.venue_order_id,
        form.instant(order.updated_at),
        order.id,
    )


ORDER_KEEPING_COLUMNS: Final = ("status", "filled_quantity", "average_price", "updated_at", "id")


def keeping_venue_id(order: DriverRow, status: str) -> DriverRow:
    """An order update row (ORDER_UPDATE_COLUMNS) as one that leaves the venue order id, with
    `status` in place of its own."""
    _, filled, average, _, updated_at, order_id = order
    return (status, filled, average, updated_at, order_id)


def _insert(table: str, columns: Sequence[str], mark: Callable[[int], str], tail: str) -> str:
    marks = ", ".join(mark(n) for n in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {tail}"  # noqa: S608


def _upsert(keys: str, columns: Sequence[str], changed: Sequence[str]) -> str:
    updates = ", ".join(f"{name} = excluded.{name}" for name in changed)
    return f"ON CONFLICT ({keys}) DO UPDATE SET {updates}"


_HOLDERS: Final = "SELECT id, client_order_id, venue_order_id FROM orders"
_HOLDERS_AT_ONCE: Final = 500


def _update_order(columns: Sequence[str], mark: Callable[[int], str]) -> str:
    assignments = ", ".join(f"{name} = {mark(n)}" for n, name in enumerate(columns, 1))
    return f"UPDATE orders SET {assignments} WHERE id = {mark(len(columns) + 1)}"  # noqa: S608


@cache
def statements_for(dialect_name: str) -> JournalStatements:
    return JournalStatements(dialect_name)


class JournalStatements:
    """The batch's statements as SQL text in the driver's own parameter style, made once;
    each runs as one executemany of ready driver rows (no per-value work on the way)."""

    def __init__(self, dialect_name: str) -> None:
        mark: Callable[[int], str] = (
            (lambda n: "?") if dialect_name == "sqlite" else (lambda n: f"${n}")
        )
        self.events = _insert(
            "order_events", EVENT_COLUMNS, mark, "ON CONFLICT (event_key) DO NOTHING"
        )
        self.trades = _insert("trades", TRADE_COLUMNS, mark, "ON CONFLICT (external_id) DO NOTHING")
        self.balances = _insert(
            "balance_snapshots", BALANCE_COLUMNS, mark,
            "ON CONFLICT (venue, asset, taken_at) DO NOTHING",
        )  # fmt: skip
        self.positions = _insert(
            "positions", POSITION_COLUMNS, mark,
            _upsert("strategy_id, venue, symbol", POSITION_COLUMNS, POSITION_COLUMNS[3:]),
        )  # fmt: skip
        self.cursors = _insert(
            "journal_cursors", CURSOR_COLUMNS, mark,
            _upsert("strategy_id, venue, stream", CURSOR_COLUMNS, CURSOR_COLUMNS[3:]),
        )  # fmt: skip
        self.orders = _update_order(ORDER_CHANGES, mark)
        self.orders_keeping_venue_id = _update_order(ORDER_KEEPING_COLUMNS[:-1], mark)
        self._sqlite = dialect_name == "sqlite"

    async def holders(
        self, conn: AsyncConnection, venue: str, venue_order_ids: Sequence[str]
    ) -> dict[str, tuple[int, str]]:
        """Which order (id, client order id), of any strategy, holds each of `venue_order_ids`
        on `venue`: one indexed read for the batch."""
        found: dict[str, tuple[int, str]] = {}
        for start in range(0, len(venue_order_ids), _HOLDERS_AT_ONCE):
            chunk = list(venue_order_ids[start : start + _HOLDERS_AT_ONCE])
            if self._sqlite:
                marks = ", ".join("?" * len(chunk))
                query = f"{_HOLDERS} WHERE venue = ? AND venue_order_id IN ({marks})"  # noqa: S608
                result = await conn.exec_driver_sql(query, (venue, *chunk))
            else:
                query = f"{_HOLDERS} WHERE venue = $1 AND venue_order_id = ANY($2::text[])"  # noqa: S608
                result = await conn.exec_driver_sql(query, (venue, chunk))
            held: Sequence[Any] = result.all()
            for order_id, client_order_id, venue_order_id in held:
                found[venue_order_id] = (order_id, client_order_id)
        return found

    async def write(self, conn: AsyncConnection, rows: JournalRows) -> None:
        """Run the batch in the caller's transaction; events first, as the facts."""
        if rows.events:
            await conn.exec_driver_sql(self.events, rows.events)
        if rows.orders:
            await conn.exec_driver_sql(self.orders, list(rows.orders.values()))
        if rows.orders_keeping_venue_id:
            keeping = list(rows.orders_keeping_venue_id.values())
            await conn.exec_driver_sql(self.orders_keeping_venue_id, keeping)
        if rows.trades:
            await conn.exec_driver_sql(self.trades, rows.trades)
        if rows.positions:
            await conn.exec_driver_sql(self.positions, list(rows.positions.values()))
        if rows.cursors:
            await conn.exec_driver_sql(self.cursors, list(rows.cursors.values()))
        if rows.balances:
            await conn.exec_driver_sql(self.balances, rows.balances)


async def insert_intended(
    engine: AsyncEngine,
    order: dict[str, Any],
    event: DriverRow,
    *,
    row_error: Any,
) -> int:
    """Store a new order and its intent event (a driver row whose order_id is filled in
    here) in one transaction; the order's id."""
    events = statements_for(engine.dialect.name).events
    with translated_errors(f"recording order {order['client_order_id']!r}", row_error=row_error):
        async with write_transaction(engine) as conn:
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
