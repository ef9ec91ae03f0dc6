"""The simulated broker: backtesting.py 0.6's `_Broker`, one asset, whole units.

Orders placed on a bar are examined when the engine hands the broker a later bar, in the
peer's order and by its rules (`_process_orders`): closing orders first, then stop-losses,
then the rest as placed; stops trigger on the bar's high or low and gap to the open; a trade's
brackets may fill on the bar it opens. Fills become `Execution` records, closed trades
`ClosedTrade` records. Cash moves by commissions and realized pnl; equity is cash plus the
open trades marked to the close (docs/backtest.md lists every rule).
"""

from __future__ import annotations

import logging
import math
from typing import Final

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.clock import Clock
from quantflow_async.backtest.executions import ClosedTrade as ClosedTrade
from quantflow_async.backtest.executions import Execution as Execution
from quantflow_async.backtest.matching import process_orders
from quantflow_async.backtest.orders import Order
from quantflow_async.backtest.trades import Position, Trade

logger = logging.getLogger(__name__)

# backtesting.py's default order size: "all of it", kept just below 1 so that rounding in
# `equity * fraction` can never buy one unit more than the cash pays for.
FULL_EQUITY: Final = 1 - 2**-52


class Broker:
    """Cash, open trades and waiting orders of one backtest on one symbol.

    `orders` are the orders waiting, `trades` the open trades, `closed_trades` the closed
    ones; `executions` every fill. The run options are the peer's: `margin` (1 / leverage),
    `trade_on_close` (market orders fill at the close of the bar they were placed on),
    `hedging` (opposite orders open their own trades instead of closing FIFO),
    `exclusive_orders` (a new order cancels the others and closes every trade first) and
    `spread` (entries pay a fraction of price more). `slippage` is ours: every fill not at
    a limit price gives that fraction of the price away.
    """

    def __init__(
        self,
        bars: Bars,
        *,
        symbol: str,
        cash: float,
        commission: float,
        slippage: float = 0.0,
        exclusive_orders: bool = True,
        margin: float = 1.0,
        trade_on_close: bool = False,
        hedging: bool = False,
        spread: float = 0.0,
    ) -> None:
        self._bars = bars
        self._prices: tuple[list[float], list[float], list[float], list[float]] | None = None
        self._reads = 0
        self.clock = Clock(len(bars))
        self.symbol = symbol
        self.cash = float(cash)
        self.rate = float(commission)
        self.slippage = float(slippage)
        self.exclusive_orders = exclusive_orders
        self.leverage = 1 / margin
        self.trade_on_close = trade_on_close
        self.hedging = hedging
        self.spread = float(spread)
        self.position_size = 0
        self.cost = 0.0  # sum of size * entry price over the open trades
        self.cancelled_orders = 0
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self.closed_trades: list[ClosedTrade] = []
        self.executions: list[Execution] = []
        self.position = Position(self)

    # -- what a strategy asks for -------------------------------------------------------------

    def new_order(
        self,
        size: float,
        limit: float | None = None,
        stop: float | None = None,
        sl: float | None = None,
        tp: float | None = None,
        tag: object = None,
        *,
        trade: Trade | None = None,
    ) -> Order:
        """Queue an order; with exclusive orders, a strategy's order first cancels the others
        (a trade's brackets stay) and closes every open trade. Raises ValueError when sl,
        the entry price and tp are not in order (sl < entry < tp for a long)."""
        size = float(size)
        limit = None if limit is None else float(limit)
        stop = None if stop is None else float(stop)
        sl = None if sl is None else float(sl)
        tp = None if tp is None else float(tp)
        if sl or tp:
            self._check_bracket(size, limit or stop or self.adjusted(size, self.last_price), sl, tp)
        order = Order(self, size, limit, stop, sl, tp, trade, tag)
        if trade is None and self.exclusive_orders:
            # The peer's loop, removal while iterating included: an order right after a
            # cancelled one is skipped, and the results agree only if ours skips it too.
            for other in self.orders:
                if not other.is_contingent:
                    other.cancel()
            for open_trade in self.trades:
                open_trade.close()
        # A trade's stop-loss goes first, so that within a bar it is examined before its tp.
        self.orders.insert(0 if trade is not None and stop else len(self.orders), order)
        return order

    @staticmethod
    def _check_bracket(size: float, entry: float, sl: float | None, tp: float | None) -> None:
        if size > 0 and not (sl or -math.inf) < entry < (tp or math.inf):
            raise ValueError(f"a long order needs sl ({sl}) < entry ({entry}) < tp ({tp})")
        if size < 0 and not (tp or -math.inf) < entry < (sl or math.inf):
            raise ValueError(f"a short order needs tp ({tp}) < entry ({entry}) < sl ({sl})")

    def close_position(self) -> None:
        """Close every open trade at the next open, before any other order."""
        self.position.close()

    @property
    def bars(self) -> Bars:
        return self._bars

    @bars.setter
    def bars(self, bars: Bars) -> None:
        self._bars = bars
        self._prices = None
        self._reads = 0

    def bar_prices(self, bar: int) -> tuple[float, float, float]:
        """Open, high and low of `bar`, for the order processing."""
        prices = self._prices
        if prices is None:
            self._reads += 1
            if self._reads * 16 < len(self._bars):
                # Orders on few bars (a crossover strategy's): read the arrays; once orders
                # wait on many (brackets), lists made once are faster to read.
                bars = self._bars
                return float(bars.open[bar]), float(bars.high[bar]), float(bars.low[bar])
            bars = self._bars
            prices = self._prices = (
                bars.open.tolist(),
                bars.high.tolist(),
                bars.low.tolist(),
                bars.close.tolist(),
            )
        return prices[0][bar], prices[1][bar], prices[2][bar]

    def close_at(self, bar: int) -> float:
        """The close of `bar`."""
        prices = self._prices
        return float(self._bars.close[bar]) if prices is None else prices[3][bar]

    @property
    def pending(self) -> bool:
        """Any order waiting."""
        return bool(self.orders)

    @property
    def last_price(self) -> float:
        """The close of the bar the strategy sees last."""
        return float(self.bars.close[self.clock.end - 1])

    def equity(self, price: float) -> float:
        """Cash plus the open trades marked at `price` (their entry commission already paid)."""
        return self.cash + (price * self.position_size - self.cost)

    def margin_available(self, price: float) -> float:
        """Equity at `price` less the margin the open trades hold, never below 0."""
        if not self.trades:
            return max(0, self.cash)  # what the sums below give with no trade, without them
        leverage = self.leverage
        used = sum(abs(trade.size) * price / leverage for trade in self.trades)
        return max(0, self.cash + (price * self.position_size - self.cost) - used)

    def restore(self, *, cash: float, size: int, entry_price: float, bar: int) -> None:
        """Start from an account that already holds `size` units entered at `entry_price`.

        `cash` is the account's cash as this broker counts it: starting cash moved only by
        commissions and realized pnl (a spot account's quote balance plus `size * entry_price`).
        Waiting orders are dropped. The live runner uses this to mirror a venue's account.
        """
        self.cash = float(cash)
        self.orders.clear()
        self.trades[:] = [Trade(self, size, entry_price, bar, None)] if size else []
        self._update_position()

    # -- what the engine drives ---------------------------------------------------------------

    def execute(self, bar: int) -> None:
        """Fill what the orders waiting can fill on `bar` (the peer's `_process_orders`)."""
        process_orders(self, bar)

    def liquidate(self, bar: int) -> None:
        """Out of money: close the open trades at this bar's close; the account stays at 0."""
        price = float(self.bars.close[bar])
        # The peer removes each trade from the list it iterates, so it closes every other
        # one; to leave the same trades behind, this does too.
        for trade in self.trades:
            size = trade.size
            fill = self.slipped(price, size < 0)
            fee, gross = self.close_trade(trade, size, fill, bar)
            self.record(bar, size < 0, abs(size), fill, fee, gross)
        self.orders.clear()
        self.cash = 0.0

    def finalize(self) -> None:
        """Place orders closing every open trade, oldest first (`finalize_trades`)."""
        for trade in reversed(self.trades):
            trade.close()

    # -- the rules the order processing applies -------------------------------------------------

    def slipped(self, price: float, buying: bool) -> float:
        if not self.slippage:
            return price
        return price * (1 + self.slippage) if buying else price * (1 - self.slippage)

    def adjusted(self, size: float, price: float) -> float:
        """`price` with the spread an entry pays: higher for a buy, lower for a sell."""
        if not self.spread:
            return price
        return price * (1 + math.copysign(self.spread, size))

    def open_trade(self, size: int, price: float, order: Order, bar: int) -> float:
        """Open a trade of `size` at `price` (spread included) with the order's brackets;
        return the entry commission paid."""
        trade = Trade(self, size, price, bar, order.tag)
        self.trades.append(trade)
        self._update_position()
        fee = abs(size) * price * self.rate
        self.cash -= fee
        if order.tp:
            trade.tp = order.tp
        if order.sl:
            trade.sl = order.sl
        return fee

    def close_trade(self, trade: Trade, size: int, price: float, bar: int) -> tuple[float, float]:
        """Close `size` (same sign as the trade) of `trade` at `price`; return (exit
        commission, gross pnl). What is left keeps its brackets, resized."""
        exit_fee = abs(size) * price * self.rate
        entry_fee = abs(size) * trade.entry_price * self.rate
        gross = size * (price - trade.entry_price)
        self.cash += gross - exit_fee
        fees = exit_fee + entry_fee
        bars = self.bars
        left = trade.size - size
        # As the peer's: a trade closed whole keeps its brackets' prices (a stop that fired
        # keeps it only if it filled at it), a part closed has none.
        sl, tp = (trade.sl, trade.tp) if not left else (None, None)
        self.closed_trades.append(
            ClosedTrade(
                self.symbol,
                size,
                trade.entry_bar,
                bar,
                bars.time_at(trade.entry_bar),
                bars.time_at(bar),
                trade.entry_price,
                price,
                fees,
                gross - fees,
                trade.tag,
                sl,
                tp,
            )
        )
        if left:
            trade.size = left
            for order in (trade.sl_order, trade.tp_order):
                if order is not None:
                    order.size = -left
        else:
            self.trades.remove(trade)
            for order in (trade.sl_order, trade.tp_order):
                if order is not None:
                    self.orders.remove(order)
        self._update_position()
        return exit_fee, gross

    def record(
        self, bar: int, buying: bool, quantity: int, price: float, fee: float, pnl: float | None
    ) -> None:
        self.executions.append(
            Execution(
                len(self.executions) + 1,
                bar,
                self.bars.time_at(bar),
                self.symbol,
                "buy" if buying else "sell",
                quantity,
                price,
                fee,
                pnl,
            )
        )

    def cancel(self, order: Order, bar: int, reason: str) -> None:
        self.orders.remove(order)
        self.cancelled_orders += 1
        logger.debug("bar %d: order of size %s cancelled: %s", bar, order.size, reason)

    def _update_position(self) -> None:
        # Recomputed rather than adjusted, so equity is the peer's sum to the last bit; one
        # trade (the usual case) gives the same numbers as the sums without running them.
        trades = self.trades
        if not trades:
            self.position_size = self.cost = 0  # what the sums of nothing are
        elif len(trades) == 1:
            self.position_size = trades[0].size
            self.cost = trades[0].size * trades[0].entry_price
        else:
            self.position_size = sum(trade.size for trade in trades)
            self.cost = sum(trade.size * trade.entry_price for trade in trades)
