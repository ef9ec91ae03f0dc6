"""The `Venue` protocol: what the journal and the live runner need from an exchange.

Shaped after ccxt's unified API (`create_order`, `cancel_order`, `fetch_order`, ...), but with
exact Decimals and plain frozen records instead of ccxt's dicts of floats, so that the rest of
the live side never sees a float price. `CcxtVenue` (live extra) is the implementation for a
real exchange and for the paper exchange; tests may bring their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, TypeAlias, runtime_checkable

OrderSide: TypeAlias = Literal["buy", "sell"]
OrderType: TypeAlias = Literal["market", "limit", "stop", "stop_limit"]
TimeInForce: TypeAlias = Literal["GTC", "IOC", "FOK"]
VenueOrderStatus: TypeAlias = Literal[
    "open", "partially_filled", "filled", "cancelled", "rejected", "expired"
]
"""An order's status as the venue reports it (ccxt's `open`/`closed`/`canceled`, refined by
the filled quantity: an open order with a fill is `partially_filled`, a closed one `filled`)."""


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue knows it."""

    venue_order_id: str
    client_order_id: str | None
    symbol: str
    side: OrderSide
    type: OrderType
    status: VenueOrderStatus
    quantity: Decimal
    filled_quantity: Decimal
    average_price: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One execution of one of our orders, as `fetch_my_trades` reports it.

    `trade_id` is the venue's id of the execution, unique per venue: it is what makes a
    re-delivered fill a counted duplicate. `fee` is in `fee_asset`.
    """

    trade_id: str
    venue_order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str | None
    executed_at: datetime


@dataclass(frozen=True, slots=True)
class AssetBalance:
    """One asset's balance: `free` to trade, `locked` in open orders."""

    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar (a kline): `opened_at` is its start; `closed` is False while it forms."""

    opened_at: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    closed: bool


@dataclass(frozen=True, slots=True)
class NewOrder:
    """What `create_order` sends: our `client_order_id` always goes with it."""

    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Venue(Protocol):
    """An exchange account, as the journal and the live runner use it.

    Every method is a coroutine that never blocks the event loop. A connection fault is
    retried inside the venue; what reaches the caller is `VenueError` (or a subclass) when it
    could not be settled. `create_order` is safe to call again with the same
    `client_order_id`: the venue is asked for that id before anything is re-sent.
    """

    name: str

    async def create_order(self, order: NewOrder) -> VenueOrder: ...

    async def cancel_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder: ...

    async def fetch_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder | None:
        """The order, or None when the venue has never heard of it."""
        ...

    async def fetch_open_orders(self, symbol: str) -> Sequence[VenueOrder]: ...

    async def fetch_my_trades(
        self, symbol: str, *, since: datetime | None = None, after_trade_id: str | None = None
    ) -> Sequence[VenueTrade]:
        """Our executions on `symbol`, oldest first, from `since` or after `after_trade_id`."""
        ...

    async def fetch_balance(self) -> Mapping[str, AssetBalance]: ...

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> Sequence[Bar]: ...

    async def aclose(self) -> None: ...
