"""Which waiting orders fill on a bar, at what price: backtesting.py 0.6's `_process_orders`.

Orders are examined in the broker's list order (closing orders, then stop-losses, then the
rest as placed). A stop order waits until the bar's high (buy) or low (sell) touches its stop,
then is a market or limit order: a stop-market fills at the stop, or at the open when the bar
gaps through it. A limit fills at the limit, or at the open when the bar opens past it; a
stop-limit whose limit is touched on the bar its stop triggers fills only when the limit is on
the far side of the stop (the pessimistic reading). A trade's sl or tp order that fills closes
it (the other is then cancelled); a market order whose trade has brackets is followed by a
second pass over the bar, so an sl or tp may fill on the bar the trade opened.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantflow_async.backtest.broker import Broker
    from quantflow_async.backtest.orders import Order
    from quantflow_async.backtest.trades import Trade


def process_orders(broker: Broker, bar: int) -> None:
    """Fill what the orders waiting can fill on `bar`."""
    opening, high, low = broker.bar_prices(bar)
    orders = broker.orders
    for order in orders:  # a first look, as most bars fill nothing: stop at one that may
        stop = order.stop
        if stop:
            if high >= stop if order.size > 0 else low <= stop:
                break
            continue
        limit = order.limit
        if not limit or (low <= limit if order.size > 0 else high >= limit):
            break
    else:
        return
    again = False
    for order in list(orders):
        if order not in orders:  # the other bracket of a trade just closed
            continue
        is_long = order.size > 0
        stop = order.stop
        if stop:
            if not (high >= stop if is_long else low <= stop):
                continue
            order.stop = None  # triggered: from now on a market or limit order
        limit = order.limit
        trade = order.parent_trade
        contingent = trade is not None and (order is trade.sl_order or order is trade.tp_order)
        if limit:
            if not (low <= limit if is_long else high >= limit):
                continue
            if stop and (limit <= stop if is_long else limit >= stop):
                continue  # the limit traded before the stop made the order live
            price = min(stop or opening, limit) if is_long else max(stop or opening, limit)
        else:
            on_close = broker.trade_on_close and not contingent
            price = broker.close_at(bar - 1) if on_close else opening
            if stop:
                price = max(price, stop) if is_long else min(price, stop)
            price = broker.slipped(price, is_long)
        market = not limit and not stop
        when = bar - 1 if market and broker.trade_on_close and not contingent else bar
        if trade is not None:
            _close_for(broker, order, trade, price, when, stop)
            continue
        if _fill_standalone(broker, order, price, when, bar):
            if order.sl or order.tp:
                if market:
                    again = True
                elif stop and not limit and order.tp and _bracket_follows_stop(order, high, low):
                    again = True
                # else an sl or tp inside this bar waits for the next bar, as the peer's does
    if again:
        process_orders(broker, bar)


def _close_for(
    broker: Broker, order: Order, trade: Trade, price: float, when: int, stop: float | None
) -> None:
    """An order of `trade` (its sl, its tp, or a close) filled at `price`."""
    if trade in broker.trades:
        size = int(math.copysign(min(abs(trade.size), abs(order.size)), order.size))
        if order is trade.sl_order and price == stop:
            order.stop = stop  # closed at its stop: the closed trade keeps it (the peer's SL)
        fee, gross = broker.close_trade(trade, -size, price, when)
        broker.record(when, size > 0, abs(size), price, fee, gross)
        if order is trade.sl_order:
            order.stop = stop  # the stop it was, even when the fill gapped past it
    if order is not trade.sl_order and order is not trade.tp_order:
        broker.orders.remove(order)  # a close order, done; brackets left with their trade


def _fill_standalone(broker: Broker, order: Order, price: float, when: int, bar: int) -> bool:
    """Size and fill a strategy's order: close opposite trades FIFO (unless hedging), then
    open a trade with the rest if the margin pays for it. True when a trade was opened."""
    size = order.size
    is_long = size > 0
    close = broker.close_at(bar)  # the peer marks margin at the bar's close
    adjusted = broker.adjusted(size, price)
    per_unit = adjusted + abs(size) * price * broker.rate / abs(size)
    if -1 < size < 1:
        available = broker.margin_available(close)
        units = int((available * broker.leverage * abs(size)) // per_unit)
        if not units:
            broker.cancel(order, bar, "not enough margin for one unit")
            return False
        need = units if is_long else -units
    else:
        need = int(size)
    closed = 0
    fees = 0.0
    pnl: float | None = None
    if not broker.hedging:
        for trade in list(broker.trades):
            if (trade.size > 0) == is_long:
                continue
            part = trade.size if abs(need) >= abs(trade.size) else -need
            fee, gross = broker.close_trade(trade, part, price, when)
            need += part
            closed += abs(part)
            fees += fee
            pnl = gross if pnl is None else pnl + gross
            if not need:
                break
    opened = False
    if abs(need) * per_unit > broker.margin_available(close) * broker.leverage:
        broker.cancel(order, bar, "not enough margin")
        need = 0
    else:
        broker.orders.remove(order)
    if need and adjusted == price:  # one execution for the whole order
        fees += broker.open_trade(need, adjusted, order, when)
        broker.record(when, is_long, closed + abs(need), price, fees, pnl)
        return True
    if closed:
        broker.record(when, is_long, closed, price, fees, pnl)
    if need:
        fee = broker.open_trade(need, adjusted, order, when)
        broker.record(when, is_long, abs(need), adjusted, fee, None)
        opened = True
    return opened


def _bracket_follows_stop(order: Order, high: float, low: float) -> bool:
    """A stop entry and its tp both inside the bar, its sl not: not ambiguous, as the stop
    and the tp lie the same way, so the tp may fill on this bar."""
    if order.size > 0:
        return (order.tp or math.inf) <= high and (order.sl or -math.inf) < low
    return (order.tp or -math.inf) >= low and (order.sl or math.inf) > high
