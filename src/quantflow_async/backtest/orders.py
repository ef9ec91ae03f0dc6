"""`Order`: an order waiting for the broker, as backtesting.py 0.6 has it.

A strategy's `buy`/`sell` makes one; a trade's `sl` and `tp` are contingent orders of that
trade (a stop-market and a limit order closing it); `Trade.close` makes a market order that
closes part or all of it. Every order is good till cancelled. The fields are read by the
strategy and moved by the broker; to change an order, cancel it and place another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantflow_async.backtest.broker import Broker
    from quantflow_async.backtest.trades import Trade


class Order:
    """`size` > 0 buys, < 0 sells; 0 < |size| < 1 is a fraction of the margin available.

    `limit` makes it a limit order, `stop` a stop order (a stop-limit with both): once the
    price touches `stop`, `stop` becomes None and the order is a market (or limit) order.
    `sl` and `tp` are the brackets of the trade it will open. `parent_trade` is the trade a
    contingent or closing order belongs to.
    """

    __slots__ = ("_broker", "limit", "parent_trade", "size", "sl", "stop", "tag", "tp")

    def __init__(
        self,
        broker: Broker,
        size: float,
        limit: float | None = None,
        stop: float | None = None,
        sl: float | None = None,
        tp: float | None = None,
        parent_trade: Trade | None = None,
        tag: object = None,
    ) -> None:
        self._broker = broker
        self.size = size
        self.limit = limit
        self.stop = stop
        self.sl = sl
        self.tp = tp
        self.parent_trade = parent_trade
        self.tag = tag

    def cancel(self) -> None:
        """Withdraw the order; a trade's sl or tp order cancelled leaves the trade without it."""
        self._broker.orders.remove(self)
        trade = self.parent_trade
        if trade is not None:
            if self is trade.sl_order:
                trade.sl_order = None
            elif self is trade.tp_order:
                trade.tp_order = None

    @property
    def is_long(self) -> bool:
        return self.size > 0

    @property
    def is_short(self) -> bool:
        return self.size < 0

    @property
    def is_contingent(self) -> bool:
        """True for a trade's sl or tp order: cancelled when the trade closes."""
        trade = self.parent_trade
        return trade is not None and (self is trade.sl_order or self is trade.tp_order)

    def __repr__(self) -> str:
        fields = (
            ("size", self.size),
            ("limit", self.limit),
            ("stop", self.stop),
            ("sl", self.sl),
            ("tp", self.tp),
            ("tag", self.tag),
        )
        shown = ", ".join(f"{name}={value!r}" for name, value in fields if value is not None)
        return f"<Order {shown}{', contingent' if self.is_contingent else ''}>"
