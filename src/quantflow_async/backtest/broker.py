"""The simulated broker: backtesting.py 0.6's execution rules, one asset, whole units.

Orders placed on a bar are executed when the engine hands the broker the next bar: a market
order at that bar's open, a limit order once the price trades through its limit. Every
execution is kept as a plain `Execution` record; every closed FIFO lot as a `ClosedTrade`.
Accounting follows the peer exactly: cash moves by commissions and realized pnl, and equity is
cash plus the open lots marked to a price (docs/backtest.md lists the rules).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, NamedTuple

from quantflow_async.backtest.bars import Bars

logger = logging.getLogger(__name__)

# backtesting.py's default order size: "all of it", kept just below 1 so that rounding in
# `equity * fraction` can never buy one unit more than the cash pays for.
FULL_EQUITY: Final = 1 - 2**-52


# Executions and closed trades are NamedTuples, not frozen dataclasses: as immutable, and made
# in about half the time, which a run with many thousands of fills notices.
class Execution(NamedTuple):
    """One simulated fill. `pnl` is the FIFO pnl it realized (before commissions), or None.

    `quantity` is in whole units; `commission` is what this execution paid. `sequence` counts
    executions from 1 within one backtest, so `external_id(backtest_id)` is deterministic.
    """

    sequence: int
    bar: int
    time: datetime
    symbol: str
    side: Literal["buy", "sell"]
    quantity: int
    price: float
    commission: float
    pnl: float | None

    def external_id(self, backtest_id: int) -> str:
        """The fill id to store: the same backtest run twice gives the same ids."""
        return f"backtest-{backtest_id}-{self.sequence}"


class ClosedTrade(NamedTuple):
    """A lot from entry to exit. `size` < 0 for a short; `pnl` is net of both commissions."""

    symbol: str
    size: int
    entry_bar: int
    exit_bar: int
    entry_time: datetime
    exit_time: datetime
    entry_price: float
    exit_price: float
    commission: float
    pnl: float


@dataclass(slots=True)
class Order:
    """A pending order: `size` > 0 buys, < 0 sells; |size| < 1 is a fraction of equity."""

    size: float
    limit: float | None


@dataclass(slots=True)
class _Lot:
    size: int
    price: float
    bar: int
    time: datetime


class Broker:
    """Cash, FIFO lots and pending orders of one backtest on one symbol."""

    def __init__(
        self,
        bars: Bars,
        *,
        symbol: str,
        cash: float,
        commission: float,
        slippage: float = 0.0,
        exclusive_orders: bool = True,
    ) -> None:
        self.bars = bars
        self.symbol = symbol
        self.cash = float(cash)
        self.rate = float(commission)
        self.slippage = float(slippage)
        self.exclusive_orders = exclusive_orders
        self.position_size = 0
        self.cost = 0.0  # sum of size * entry price over the open lots
        self.pending = False  # any order or close waiting for the next bar
        self.cancelled_orders = 0
        self.executions: list[Execution] = []
        self.trades: list[ClosedTrade] = []
        self._lots: list[_Lot] = []
        self._orders: list[Order] = []
        self._close_requested = False

    # -- what a strategy asks for -----------------------------------------------------------

    def place(self, size: float, limit: float | None = None) -> None:
        """Queue an order for the next bar; with exclusive orders, replace everything pending."""
        if self.exclusive_orders:
            self._orders.clear()
            self.close_position()
        self._orders.append(Order(size, limit))
        self.pending = True

    def close_position(self) -> None:
        """Close every open lot at the next bar's open, before any other pending order."""
        if self._lots:
            self._close_requested = True
            self.pending = True

    @property
    def orders(self) -> tuple[Order, ...]:
        return tuple(self._orders)

    def equity(self, price: float) -> float:
        """Cash plus the open lots marked at `price` (their entry commission already paid)."""
        return self.cash + (price * self.position_size - self.cost)

    def restore(self, *, cash: float, size: int, entry_price: float, bar: int) -> None:
        """Start from an account that already holds `size` units entered at `entry_price`.

        `cash` is the account's cash as this broker counts it: starting cash moved only by
        commissions and realized pnl (a spot account's quote balance plus `size * entry_price`).
        Pending orders are dropped. The live runner uses this to mirror a venue's account.
        """
        self.cash = float(cash)
        self._orders.clear()
        self._close_requested = False
        self.pending = False
        self._lots = [_Lot(size, entry_price, bar, self.bars.time_at(bar))] if size else []
        self._update_position()

    # -- what the engine drives ---------------------------------------------------------------

    def execute(self, bar: int) -> None:
        """Fill what can be filled on `bar`: the requested close first, then orders in turn."""
        opening = float(self.bars.open[bar])
        if self._close_requested:
            self._close_requested = False
            if self._lots:
                long = self.position_size > 0
                self._fill(-self.position_size, self._slipped(opening, buying=not long), bar)
        for order in list(self._orders):
            buying = order.size > 0
            if order.limit is None:
                price = self._slipped(opening, buying=buying)
            elif buying:
                if self.bars.low[bar] > order.limit:
                    continue
                price = min(opening, order.limit)
            else:
                if self.bars.high[bar] < order.limit:
                    continue
                price = max(opening, order.limit)
            self._orders.remove(order)
            self._fill(order.size, price, bar)
        self.pending = bool(self._orders) or self._close_requested

    def liquidate(self, bar: int) -> None:
        """Out of money: close everything at this bar's close; the account stays at 0."""
        self._orders.clear()
        self._close_requested = False
        self.pending = False
        if self._lots:
            buying = self.position_size < 0
            price = self._slipped(float(self.bars.close[bar]), buying=buying)
            self._fill(-self.position_size, price, bar)
        self.cash = 0.0

    # -- the rules ----------------------------------------------------------------------------

    def _slipped(self, price: float, *, buying: bool) -> float:
        if not self.slippage:
            return price
        return price * (1 + self.slippage) if buying else price * (1 - self.slippage)

    def _margin_available(self, price: float) -> float:
        if not self._lots:
            return max(0.0, self.cash)  # what the general case gives, without the sums
        held = sum(abs(lot.size) * price for lot in self._lots)
        return max(0.0, self.equity(price) - held)

    def _fill(self, size: float, price: float, bar: int) -> None:
        """Execute `size` at `price`: close opposite lots FIFO, then open the rest if paid for."""
        buying = size > 0
        magnitude = abs(size)
        # The peer's arithmetic, operation for operation, so that sizes agree to the unit.
        per_unit = price + magnitude * price * self.rate / magnitude
        if magnitude < 1:
            units = int((self._margin_available(price) * magnitude) // per_unit)
            if not units:
                self._cancel(bar, size, "not enough equity for one unit")
                return
        else:
            units = int(magnitude)
        need = units if buying else -units
        when = self.bars.time_at(bar)
        quantity = 0
        commission = 0.0
        pnl: float | None = None
        while need and self._lots and (self._lots[0].size > 0) != buying:
            lot = self._lots[0]
            closed = lot.size if abs(need) >= abs(lot.size) else -need
            fee, gross = self._close_lot(lot, closed, price, bar, when)
            need += closed
            quantity += abs(closed)
            commission += fee
            pnl = gross if pnl is None else pnl + gross
        if need:
            if abs(need) * per_unit > self._margin_available(price):
                self._cancel(bar, size, "not enough equity")
            else:
                fee = abs(need) * price * self.rate
                self.cash -= fee
                self._lots.append(_Lot(need, price, bar, when))
                self._update_position()
                quantity += abs(need)
                commission += fee
        if quantity:
            self.executions.append(
                Execution(
                    sequence=len(self.executions) + 1,
                    bar=bar,
                    time=when,
                    symbol=self.symbol,
                    side="buy" if buying else "sell",
                    quantity=quantity,
                    price=price,
                    commission=commission,
                    pnl=pnl,
                )
            )

    def _close_lot(
        self, lot: _Lot, size: int, price: float, bar: int, when: datetime
    ) -> tuple[float, float]:
        """Close `size` (same sign as the lot) of `lot`; return (exit commission, gross pnl)."""
        exit_fee = abs(size) * price * self.rate
        entry_fee = abs(size) * lot.price * self.rate
        gross = size * (price - lot.price)
        self.cash += gross - exit_fee
        fees = exit_fee + entry_fee
        self.trades.append(
            ClosedTrade(
                symbol=self.symbol,
                size=size,
                entry_bar=lot.bar,
                exit_bar=bar,
                entry_time=lot.time,
                exit_time=when,
                entry_price=lot.price,
                exit_price=price,
                commission=fees,
                pnl=gross - fees,
            )
        )
        if size == lot.size:
            self._lots.pop(0)
        else:
            lot.size -= size
        self._update_position()
        return exit_fee, gross

    def _update_position(self) -> None:
        # Recomputed rather than adjusted, so equity is the peer's sum to the last bit; one
        # lot (the usual case) gives the same numbers as the sums without running them.
        lots = self._lots
        if len(lots) == 1:
            self.position_size = lots[0].size
            self.cost = lots[0].size * lots[0].price
        else:
            self.position_size = sum(lot.size for lot in lots)
            self.cost = sum(lot.size * lot.price for lot in lots)

    def _cancel(self, bar: int, size: float, reason: str) -> None:
        self.cancelled_orders += 1
        logger.debug("bar %d: order of size %s cancelled: %s", bar, size, reason)
