"""The paper exchange's records: the state file's tables, an order and a trade as it stores
them, and what one fill changes. Plain frozen values; `state` reads and writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from quantflow_async.live.paper.matching import Side

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS balances (asset TEXT PRIMARY KEY, amount TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL UNIQUE,
    side TEXT NOT NULL,
    type TEXT NOT NULL,
    time_in_force TEXT,
    quantity TEXT NOT NULL,
    price TEXT,
    stop_price TEXT,
    status TEXT NOT NULL,
    executed_qty TEXT NOT NULL,
    cum_quote TEXT NOT NULL,
    triggered INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    update_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_open ON orders (status, id);
CREATE TABLE IF NOT EXISTS trades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    qty TEXT NOT NULL,
    quote_qty TEXT NOT NULL,
    commission TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    is_maker INTEGER NOT NULL
);
"""

OPEN_STATUSES: Final = ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One order as stored (Binance's fields, in our names)."""

    id: int
    client_order_id: str
    side: Side
    type: str
    time_in_force: str | None
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    status: str
    executed_qty: Decimal
    cum_quote: Decimal
    triggered: bool
    time_ms: int
    update_ms: int

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed_qty

    @property
    def limit_priced(self) -> bool:
        """A limit order, or a stop-limit: it rests at its price and may fill in portions."""
        return self.price is not None


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One execution: `commission` is in the quote asset."""

    id: int
    order_id: int
    side: Side
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    time_ms: int
    is_maker: bool


@dataclass(frozen=True, slots=True)
class NewOrderRow:
    """An order about to be stored (its id is the database's)."""

    client_order_id: str
    side: Side
    type: str
    time_in_force: str | None
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_ms: int


@dataclass(frozen=True, slots=True)
class Execution:
    """A fill to record, all of an order or a portion of it: its price, quantity and fee, and
    the account's balances after it."""

    price: Decimal
    quantity: Decimal
    fee: Decimal
    time_ms: int
    is_maker: bool
    quote: Decimal
    base: Decimal


def optional_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def order_of(row: tuple[Any, ...]) -> OrderRow:
    return OrderRow(
        id=row[0],
        client_order_id=row[1],
        side=row[2],
        type=row[3],
        time_in_force=row[4],
        quantity=Decimal(row[5]),
        price=_decimal(row[6]),
        stop_price=_decimal(row[7]),
        status=row[8],
        executed_qty=Decimal(row[9]),
        cum_quote=Decimal(row[10]),
        triggered=bool(row[11]),
        time_ms=row[12],
        update_ms=row[13],
    )


def trade_of(row: tuple[Any, ...]) -> TradeRow:
    return TradeRow(
        id=row[0],
        order_id=row[1],
        side=row[2],
        price=Decimal(row[3]),
        qty=Decimal(row[4]),
        quote_qty=Decimal(row[5]),
        commission=Decimal(row[6]),
        time_ms=row[7],
        is_maker=bool(row[8]),
    )


@dataclass(frozen=True, slots=True)
class BarChange:
    """What one closed bar did to one open order: its stop `triggered`, an `execution`, or a new
    `status` (EXPIRED) with no execution."""

    order_id: int
    side: Side
    triggered: bool
    execution: Execution | None = None
    status: str | None = None
