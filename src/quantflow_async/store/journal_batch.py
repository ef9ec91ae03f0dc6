"""One batch of the order journal: the driver rows of its accepted events, and the
idempotent statements that write them in one transaction.

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

from sqlalchemy.ext.asyncio import AsyncConnection

from quantflow_async.records import TRADE_INSERT_COLUMNS
from quantflow_async.validation import decimal_text, epoch_micros

ORDER_CHANGES: Final = (
    "status",
    "filled_quantity",
    "average_price",
    "venue_order_id",
    "updated_at",
)
"""The columns of an order that its events change."""

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

    def holder_queries(
        self, venue: str, venue_order_ids: Sequence[str]
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The reads (statement, parameters) of which order holds each of `venue_order_ids`
        on `venue`: rows of (id, client_order_id, venue_order_id), a few indexed reads."""
        queries: list[tuple[str, tuple[Any, ...]]] = []
        for start in range(0, len(venue_order_ids), _HOLDERS_AT_ONCE):
            chunk = list(venue_order_ids[start : start + _HOLDERS_AT_ONCE])
            if self._sqlite:
                marks = ", ".join("?" * len(chunk))
                query = f"{_HOLDERS} WHERE venue = ? AND venue_order_id IN ({marks})"  # noqa: S608
                queries.append((query, (venue, *chunk)))
            else:
                query = f"{_HOLDERS} WHERE venue = $1 AND venue_order_id = ANY($2::text[])"  # noqa: S608
                queries.append((query, (venue, chunk)))
        return queries

    async def holders(
        self, conn: AsyncConnection, venue: str, venue_order_ids: Sequence[str]
    ) -> dict[str, tuple[int, str]]:
        """Which order (id, client order id), of any strategy, holds each of `venue_order_ids`
        on `venue`, read in the caller's transaction."""
        found: dict[str, tuple[int, str]] = {}
        for query, parameters in self.holder_queries(venue, venue_order_ids):
            held: Sequence[Any] = (await conn.exec_driver_sql(query, parameters)).all()
            for order_id, client_order_id, venue_order_id in held:
                found[venue_order_id] = (order_id, client_order_id)
        return found

    def steps(self, rows: JournalRows) -> list[tuple[str, list[DriverRow]]]:
        """The batch as (statement, rows) in the order `write` runs them, for a driver of
        one's own."""
        steps = [
            (self.events, rows.events),
            (self.orders, list(rows.orders.values())),
            (self.orders_keeping_venue_id, list(rows.orders_keeping_venue_id.values())),
            (self.trades, rows.trades),
            (self.positions, list(rows.positions.values())),
            (self.cursors, list(rows.cursors.values())),
            (self.balances, rows.balances),
        ]
        return [(statement, batch) for statement, batch in steps if batch]

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
