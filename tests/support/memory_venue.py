"""An exchange in memory: the `Venue` protocol, deterministic, for the journal's tests.

Orders, trades with increasing numeric ids and balances; a test moves the market "while the bot
was down" through `fill`, `cancel`, `expire` and `forget`, which change only the exchange.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantflow_async.errors import VenueRejected
from quantflow_async.live.venue import (
    AssetBalance,
    Bar,
    NewOrder,
    VenueOrder,
    VenueOrderStatus,
    VenueTrade,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MARKETS = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}
_FINAL = frozenset({"filled", "cancelled", "rejected", "expired"})


class MemoryVenue:
    """A spot exchange account in memory. Fees are charged in the quote asset."""

    def __init__(
        self,
        balances: Mapping[str, Decimal | str] | None = None,
        *,
        markets: Mapping[str, tuple[str, str]] = MARKETS,
        name: str = "memory",
    ) -> None:
        self.name = name
        self.markets = dict(markets)
        start = balances if balances is not None else {"BTC": "10", "USDT": "1000000"}
        self._free = {asset: Decimal(amount) for asset, amount in start.items()}
        self._orders: dict[str, VenueOrder] = {}  # by venue order id, in placing order
        self._trades: list[VenueTrade] = []
        self._clock = T0
        self._faults: dict[str, tuple[int, Exception]] = {}

    # The Venue protocol.

    async def create_order(self, order: NewOrder) -> VenueOrder:
        existing = self._by_client_id(order.client_order_id)
        if existing is not None:
            return existing
        if order.symbol not in self.markets:
            raise VenueRejected(self.name, f"unknown symbol {order.symbol!r}", code=-1121)
        if order.quantity <= 0:
            raise VenueRejected(self.name, f"quantity must be > 0, got {order.quantity}")
        placed = VenueOrder(
            venue_order_id=str(len(self._orders) + 1),
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            status="open",
            quantity=order.quantity,
            filled_quantity=Decimal(0),
            average_price=None,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            time_in_force=order.time_in_force,
            updated_at=self._tick(),
        )
        self._orders[placed.venue_order_id] = placed
        return placed

    async def cancel_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder:
        order = self._find(symbol, venue_order_id, client_order_id)
        if order is None or order.status in _FINAL:
            raise VenueRejected(self.name, "unknown order or already closed", code=-2011)
        return self.cancel(order.venue_order_id)

    async def fetch_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder | None:
        self._maybe_fail("fetch_order")
        return self._find(symbol, venue_order_id, client_order_id)

    async def fetch_open_orders(self, symbol: str) -> Sequence[VenueOrder]:
        self._maybe_fail("fetch_open_orders")
        return [o for o in self._orders.values() if o.symbol == symbol and o.status not in _FINAL]

    async def fetch_my_trades(
        self, symbol: str, *, since: datetime | None = None, after_trade_id: str | None = None
    ) -> Sequence[VenueTrade]:
        self._maybe_fail("fetch_my_trades")
        after = int(after_trade_id) if after_trade_id is not None else 0
        return [
            t
            for t in self._trades
            if t.symbol == symbol
            and int(t.trade_id) > after
            and (since is None or t.executed_at >= since)
        ]

    async def fetch_balance(self) -> Mapping[str, AssetBalance]:
        self._maybe_fail("fetch_balance")
        return {
            asset: AssetBalance(asset=asset, free=free, locked=Decimal(0))
            for asset, free in sorted(self._free.items())
        }

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> Sequence[Bar]:
        return []

    async def aclose(self) -> None:
        return None

    # What happens at the exchange while the bot is not looking.

    def fill(
        self,
        venue_order_id: str,
        quantity: Decimal | str | None = None,
        *,
        price: Decimal | str = "100",
        fee: Decimal | str = "0",
    ) -> VenueTrade:
        """Execute `quantity` (all that remains by default) of an open order at `price`."""
        order = self._open(venue_order_id)
        remaining = order.quantity - order.filled_quantity
        amount = remaining if quantity is None else Decimal(quantity)
        if not 0 < amount <= remaining:
            raise ValueError(f"order {venue_order_id}: cannot fill {amount} of {remaining}")
        trade = VenueTrade(
            trade_id=str(len(self._trades) + 1),
            venue_order_id=venue_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=amount,
            price=Decimal(price),
            fee=Decimal(fee),
            fee_asset=self.markets[order.symbol][1],
            executed_at=self._tick(),
        )
        self._trades.append(trade)
        self._settle(trade)
        filled = order.filled_quantity + amount
        cost = (order.average_price or Decimal(0)) * order.filled_quantity + amount * trade.price
        self._orders[venue_order_id] = replace(
            order,
            status="filled" if filled == order.quantity else "partially_filled",
            filled_quantity=filled,
            average_price=cost / filled,
            updated_at=trade.executed_at,
        )
        return trade

    def cancel(self, venue_order_id: str) -> VenueOrder:
        return self._close(venue_order_id, "cancelled")

    def expire(self, venue_order_id: str) -> VenueOrder:
        return self._close(venue_order_id, "expired")

    def forget(self, venue_order_id: str) -> None:
        """Drop an order as if the venue had purged it (its trades stay)."""
        del self._orders[venue_order_id]

    def fail(self, method: str, error: Exception, *, after: int = 0) -> None:
        """Let `after` calls of `method` through, then fail the next one with `error`, once."""
        self._faults[method] = (after, error)

    def order_by_client_id(self, client_order_id: str) -> VenueOrder:
        order = self._by_client_id(client_order_id)
        if order is None:
            raise KeyError(client_order_id)
        return order

    @property
    def orders(self) -> tuple[VenueOrder, ...]:
        return tuple(self._orders.values())

    @property
    def trades(self) -> tuple[VenueTrade, ...]:
        return tuple(self._trades)

    def balance(self, asset: str) -> Decimal:
        return self._free.get(asset, Decimal(0))

    # Inside the exchange.

    def _maybe_fail(self, method: str) -> None:
        if method not in self._faults:
            return
        after, error = self._faults[method]
        if after:
            self._faults[method] = (after - 1, error)
            return
        del self._faults[method]
        raise error

    def _tick(self) -> datetime:
        self._clock += timedelta(seconds=1)
        return self._clock

    def _by_client_id(self, client_order_id: str) -> VenueOrder | None:
        for order in self._orders.values():
            if order.client_order_id == client_order_id:
                return order
        return None

    def _find(
        self, symbol: str, venue_order_id: str | None, client_order_id: str | None
    ) -> VenueOrder | None:
        if venue_order_id is not None:
            order = self._orders.get(venue_order_id)
        elif client_order_id is not None:
            order = self._by_client_id(client_order_id)
        else:
            raise ValueError("give venue_order_id or client_order_id")
        return order if order is not None and order.symbol == symbol else None

    def _open(self, venue_order_id: str) -> VenueOrder:
        order = self._orders[venue_order_id]
        if order.status in _FINAL:
            raise ValueError(f"order {venue_order_id} is {order.status}")
        return order

    def _close(self, venue_order_id: str, status: VenueOrderStatus) -> VenueOrder:
        order = replace(self._open(venue_order_id), status=status, updated_at=self._tick())
        self._orders[venue_order_id] = order
        return order

    def _settle(self, trade: VenueTrade) -> None:
        base, quote = self.markets[trade.symbol]
        sign = 1 if trade.side == "buy" else -1
        self._free[base] = self.balance(base) + sign * trade.quantity
        self._free[quote] = self.balance(quote) - sign * trade.quantity * trade.price - trade.fee
