"""The execution rules, pure: the backtest broker's, applied to Binance order types.

A market order fills at the forming bar's open; resting orders are checked against each closed
bar's OHLC; the funds rule is `Broker._fill`'s: what opens exposure must be paid for by
equity minus what is already held. Every price and quantity is an exact Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Final, Literal, TypeAlias

from quantflow_async.live.paper.market import Bar

Side: TypeAlias = Literal["BUY", "SELL"]
ORDER_TYPES: Final = (
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)
LIMIT_TYPES: Final = frozenset({"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
TRIGGERED_TYPES: Final = frozenset(
    {"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"}
)


@dataclass(frozen=True, slots=True)
class Resting:
    """What the rules need of an open order."""

    side: Side
    type: str
    limit: Decimal | None
    stop: Decimal | None
    triggered: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one bar did to a resting order: `price` when it fills, `triggered` when its stop
    was reached (a stop-limit that did not also fill keeps resting as a limit)."""

    price: Decimal | None
    triggered: bool


NOTHING: Final = Outcome(None, False)


def fill_on_arrival(side: Side, order_type: str, limit: Decimal | None, bar: Bar) -> Decimal | None:
    """The price an order arriving while `bar` forms fills at at once, or None to rest.

    A market order fills at the open; a limit order that crosses the open fills there (the
    broker's min(open, limit) for a buy when low <= limit holds with low <= open <= limit).
    Stop orders always rest until a bar closes.
    """
    if order_type == "MARKET":
        return bar.open
    if (
        order_type in ("LIMIT", "LIMIT_MAKER")
        and limit is not None
        and _crosses(side, limit, bar.open)
    ):
        return bar.open
    return None


def on_bar_close(order: Resting, bar: Bar) -> Outcome:
    """A resting order against a closed bar, in the broker's terms.

    Buy limit: low <= limit, at min(open, limit). Sell limit: high >= limit, at max(open, limit).
    STOP_LOSS triggers when the price trades through the stop (buy: high >= stop, sell: low <=
    stop) at max/min(open, stop); TAKE_PROFIT the other way round, at min/max(open, stop). A
    triggered stop-limit fills in the same bar at the trigger price when its limit allows it,
    else it rests as a limit from the next bar (never assuming the bar came back to it).
    """
    if order.stop is not None and not order.triggered:
        trigger = _trigger_price(order.side, order.type, order.stop, bar)
        if trigger is None:
            return NOTHING
        if order.limit is None:
            return Outcome(trigger, True)
        return Outcome(trigger if _crosses(order.side, order.limit, trigger) else None, True)
    if order.limit is None:
        return NOTHING
    if order.side == "BUY":
        return Outcome(min(bar.open, order.limit), False) if bar.low <= order.limit else NOTHING
    return Outcome(max(bar.open, order.limit), False) if bar.high >= order.limit else NOTHING


def portion(remaining: Decimal, budget: Decimal | None, step: Decimal) -> Decimal:
    """How much of an order's `remaining` quantity fills this bar: all of it without a volume
    `budget`, else at most the budget rounded down to the lot `step` (possibly zero)."""
    if budget is None:
        return remaining
    return min(remaining, (budget / step).to_integral_value(ROUND_DOWN) * step)


def would_take(side: Side, limit: Decimal, bar: Bar) -> bool:
    """Whether a LIMIT_MAKER arriving now would fill at once (Binance rejects it then)."""
    return _crosses(side, limit, bar.open)


def _crosses(side: Side, limit: Decimal, price: Decimal) -> bool:
    return limit >= price if side == "BUY" else limit <= price


def _trigger_price(side: Side, order_type: str, stop: Decimal, bar: Bar) -> Decimal | None:
    stop_loss = order_type.startswith("STOP_LOSS")
    rising = (side == "BUY") == stop_loss  # a buy stop-loss or a sell take-profit waits for a rise
    if rising:
        return max(bar.open, stop) if bar.high >= stop else None
    return min(bar.open, stop) if bar.low <= stop else None


# -- funds ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settlement:
    """Balances after a fill, and what the fill cost: `fee` in the quote asset, already taken
    from `quote`."""

    quote: Decimal
    base: Decimal
    notional: Decimal
    fee: Decimal


def settle(
    side: Side,
    quantity: Decimal,
    price: Decimal,
    rate: Decimal,
    *,
    quote: Decimal,
    base: Decimal,
    fee_step: Decimal,
) -> Settlement | None:
    """The balances after filling `quantity` at `price`, or None when the broker would not pay.

    The fee is notional * rate rounded half-even to `fee_step`, as Binance reports a
    commission: unrounded, prices and quantities of eight decimals at a rate of 0.001 give fees
    of nineteen, finer than any venue reports (or the journal keeps).

    The part that closes an opposite position is always paid for; the rest opens exposure and
    needs units * price * (1 + rate) <= equity - held, equity = quote + base * price and held =
    |base| * price, counted after the closing part (`Broker._fill` / `_margin_available`).
    """
    direction = 1 if side == "BUY" else -1
    opposite = base * direction < 0
    closing = min(quantity, abs(base)) if opposite else Decimal(0)
    opening = quantity - closing
    after_close_quote = quote - direction * closing * price - closing * price * rate
    after_close_base = base + direction * closing
    if opening:
        available = max(
            Decimal(0), after_close_quote + after_close_base * price - abs(after_close_base) * price
        )
        if opening * price * (1 + rate) > available:
            return None
    notional = quantity * price
    fee = (notional * rate).quantize(fee_step, ROUND_HALF_EVEN)
    return Settlement(
        quote=quote - direction * notional - fee,
        base=base + direction * quantity,
        notional=notional,
        fee=fee,
    )
