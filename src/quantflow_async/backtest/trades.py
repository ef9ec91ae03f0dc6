"""`Trade` and `Position`: the open trades and the net position a strategy sees, as
backtesting.py 0.6 has them (`self.trades`, `self.position`).

A trade's `sl` and `tp` are read and assigned like attributes: assigning one replaces the
trade's contingent order, assigning None cancels it. `close(portion)` places a market order
closing that share of the trade at the next open, ahead of every other order.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from quantflow_async.backtest.orders import Order

if TYPE_CHECKING:
    from quantflow_async.backtest.broker import Broker

_INF: Final = math.inf


class Trade:
    """An open trade: `size` units (< 0 short) entered at `entry_price` on `entry_bar`."""

    __slots__ = ("_broker", "entry_bar", "entry_price", "size", "sl_order", "tag", "tp_order")

    def __init__(
        self, broker: Broker, size: int, entry_price: float, entry_bar: int, tag: object
    ) -> None:
        self._broker = broker
        self.size = size
        self.entry_price = entry_price
        self.entry_bar = entry_bar
        self.tag = tag
        self.sl_order: Order | None = None
        self.tp_order: Order | None = None

    @property
    def entry_time(self) -> datetime:
        return self._broker.bars.time_at(self.entry_bar)

    @property
    def exit_price(self) -> None:
        """None: the trade is open (backtesting.py's name; a closed trade has a price)."""
        return None

    @property
    def exit_bar(self) -> None:
        """None: the trade is open."""
        return None

    @property
    def exit_time(self) -> None:
        """None: the trade is open."""
        return None

    @property
    def is_long(self) -> bool:
        return self.size > 0

    @property
    def is_short(self) -> bool:
        return not self.is_long

    @property
    def pl(self) -> float:
        """Profit or loss at the current close; commissions count only once it is closed."""
        return self.size * (self._broker.last_price - self.entry_price)

    @property
    def pl_pct(self) -> float:
        """`pl` as a fraction of the entry value (0.05 is 5%)."""
        return math.copysign(1, self.size) * (self._broker.last_price / self.entry_price - 1)

    @property
    def value(self) -> float:
        """|size| x the current close."""
        return abs(self.size) * self._broker.last_price

    @property
    def sl(self) -> float | None:
        """The stop-loss price; assign a price to place or move it, None to cancel it."""
        order = self.sl_order
        return order.stop if order is not None else None

    @sl.setter
    def sl(self, price: float | None) -> None:
        self._set_contingent("sl", price)

    @property
    def tp(self) -> float | None:
        """The take-profit price; assign a price to place or move it, None to cancel it."""
        order = self.tp_order
        return order.limit if order is not None else None

    @tp.setter
    def tp(self, price: float | None) -> None:
        self._set_contingent("tp", price)

    def close(self, portion: float = 1.0) -> None:
        """Close `portion` (0 < portion <= 1, at least one unit) at the next open."""
        if not 0 < portion <= 1:
            raise ValueError(f"portion must be in (0, 1], got {portion!r}")
        size = math.copysign(max(1, int(round(abs(self.size) * portion))), -self.size)
        self._broker.orders.insert(0, Order(self._broker, size, parent_trade=self, tag=self.tag))

    def _set_contingent(self, kind: Literal["sl", "tp"], price: float | None) -> None:
        """Cancel the trade's `kind` order and place a new one at `price` (none for None), in
        the same place in the queue: a stop-loss first, a take-profit last. A new order, as
        backtesting.py places one: the old one, held by a strategy, stays cancelled. The
        price the order has already, where it stands already, changes nothing (a trailing
        stop that did not move, assigned on every bar)."""
        if price is not None and not 0 < price < _INF:
            raise ValueError(f"{kind} must be a finite price > 0 or None, got {price!r}")
        order = self.sl_order if kind == "sl" else self.tp_order
        if order is not None:
            orders = self._broker.orders
            if kind == "sl" and order.stop == price and orders[0] is order:
                return
            if kind == "tp" and order.limit == price and orders[-1] is order:
                return
            order.cancel()
        if not price:
            return
        if kind == "sl":
            self.sl_order = Order(
                self._broker, -self.size, stop=float(price), parent_trade=self, tag=self.tag
            )
            self._broker.orders.insert(0, self.sl_order)
        else:
            self.tp_order = Order(
                self._broker, -self.size, limit=float(price), parent_trade=self, tag=self.tag
            )
            self._broker.orders.append(self.tp_order)

    def __repr__(self) -> str:
        return f"<Trade size={self.size} entry={self.entry_price} bar={self.entry_bar}>"


class Position:
    """The net of the open trades: `size` in units, > 0 long, < 0 short, 0 flat (falsy)."""

    __slots__ = ("_broker",)

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    @property
    def size(self) -> int:
        return self._broker.position_size

    @property
    def pl(self) -> float:
        """Profit or loss of the open trades at the current close, before exit commissions."""
        broker = self._broker
        return broker.last_price * broker.position_size - broker.cost

    @property
    def pl_pct(self) -> float:
        """`pl` in percent of what the open trades cost at entry (0 when flat)."""
        invested = sum(abs(t.size) * t.entry_price for t in self._broker.trades)
        return self.pl / invested * 100 if invested else 0.0

    @property
    def is_long(self) -> bool:
        return self._broker.position_size > 0

    @property
    def is_short(self) -> bool:
        return self._broker.position_size < 0

    def close(self, portion: float = 1.0) -> None:
        """Close `portion` of every open trade at the next open (`Trade.close`)."""
        for trade in self._broker.trades:
            trade.close(portion)

    def __bool__(self) -> bool:
        return self._broker.position_size != 0

    def __repr__(self) -> str:
        return f"<Position {self.size} ({len(self._broker.trades)} trades)>"
