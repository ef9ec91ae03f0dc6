"""The order journal's records as read back: `Order`, `OrderEvent`, `Position`, `BalanceSnapshot`.

They live here, below both the store and the live side, so that the repository can return them
without importing the live package; `quantflow_async.live.orders` is where callers take them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias, get_args

from quantflow_async.records import JsonObject, Side

OrderStatus: TypeAlias = Literal[
    "intended",
    "submitted",
    "open",
    "partially_filled",
    "filled",
    "cancelled",
    "rejected",
    "expired",
    "unknown",
]
OrderType: TypeAlias = Literal["market", "limit", "stop", "stop_limit"]
EventKind: TypeAlias = Literal[
    "intent",
    "submitted",
    "acknowledged",
    "fill",
    "cancel_requested",
    "cancelled",
    "rejected",
    "expired",
    "status",
    "refused",
]

ORDER_STATUSES: Final[tuple[OrderStatus, ...]] = get_args(OrderStatus)
ORDER_TYPES: Final[tuple[OrderType, ...]] = get_args(OrderType)
EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)
FINAL_STATUSES: Final[frozenset[OrderStatus]] = frozenset(
    {"filled", "cancelled", "rejected", "expired"}
)
OPEN_STATUSES: Final[tuple[OrderStatus, ...]] = ("submitted", "open", "partially_filled", "unknown")
"""Orders the venue may hold: what a restarted bot must look after."""
IN_DOUBT_STATUSES: Final[tuple[OrderStatus, ...]] = ("intended",)
"""Orders recorded before sending: the venue may or may not have them."""


def _frozen(document: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if document is None or isinstance(document, JsonObject):
        return document
    return JsonObject(document)


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the journal knows it: the fold of its events.

    `filled_quantity` is the sum of its fills and `average_price` their quantity-weighted
    average (None before the first fill). `metadata` is a read-only JSON object.
    """

    id: int
    strategy_id: int
    backtest_id: int | None
    venue: str
    client_order_id: str
    venue_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    time_in_force: str | None
    status: OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None
    metadata: Mapping[str, Any] | None
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen(self.metadata))

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One fact about an order, as stored; events are never changed or deleted.

    `order_id` is None only for a refused event about an order the journal did not know.
    `status_after` is the order's status once the event was applied (for a refused event,
    the status it kept); `details` holds what a refused event attempted.
    """

    id: int
    order_id: int | None
    strategy_id: int
    venue: str
    event_key: str
    kind: EventKind
    venue_event_id: str | None
    status_after: OrderStatus | None
    quantity: Decimal | None
    price: Decimal | None
    fee: Decimal | None
    fee_asset: str | None
    reason: str | None
    details: Mapping[str, Any] | None
    occurred_at: datetime | None
    recorded_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", _frozen(self.details))


@dataclass(frozen=True, slots=True)
class Position:
    """The net holding of one symbol by one strategy on one venue.

    `quantity` is signed (negative is short); `average_price` is the average entry price of
    what is held (None when flat). `realized_pnl` is gross of fees; `fees` sums the fills' fees
    as the venue charged them (whatever their asset).
    """

    strategy_id: int
    venue: str
    symbol: str
    quantity: Decimal
    average_price: Decimal | None
    realized_pnl: Decimal
    fees: Decimal
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """One asset's balance on a venue at `taken_at`."""

    id: int
    venue: str
    asset: str
    free: Decimal
    locked: Decimal
    taken_at: datetime

    @property
    def total(self) -> Decimal:
        return self.free + self.locked
