"""An order ccxt would change on its way is refused before it is sent.

ccxt truncates an amount to the market's lot step and rounds a price to its tick, without a
word: sent as asked, 0.123456789 would reach the venue as 0.12345678, and the journal, which
holds what was asked, would wait for the last 0.000000009 forever.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any, Final

import ccxt.async_support as ccxt_async

from quantflow_async.errors import VenueRejected
from quantflow_async.live.venue import NewOrder

_PRECISION_UNITS: Final = {
    ccxt_async.DECIMAL_PLACES: "decimals",
    ccxt_async.SIGNIFICANT_DIGITS: "digits",
}
CCXT_ORDER_TYPES: Final = {
    "market": "MARKET",
    "limit": "LIMIT",
    "stop": "MARKET",
    "stop_limit": "LIMIT",
}
"""The ccxt order type each of ours is sent as: a stop order goes to the market once
triggered, so only a LIMIT one sends a limit price."""


def check_precision(exchange: Any, venue: str, order: NewOrder) -> None:
    """VenueRejected, naming the value and the market's step, for a quantity, limit or stop
    price that ccxt would send changed; nothing is sent."""
    values = (
        ("quantity", "amount", order.quantity, exchange.amount_to_precision),
        ("limit price", "price", _limit_sent(order), exchange.price_to_precision),
        ("stop price", "price", order.stop_price, exchange.price_to_precision),
    )
    precision = exchange.market(order.symbol)["precision"]
    for what, key, value, to_precision in values:
        step = precision.get(key)
        if value is None or step is None:
            continue
        with decimal.localcontext():  # ccxt sets the rounding and traps of the context
            try:
                sent = Decimal(to_precision(order.symbol, value))
            except ccxt_async.InvalidOrder:  # less than one step: ccxt refuses to send 0
                sent = Decimal(0)
        if sent != value:
            unit = _PRECISION_UNITS.get(exchange.precisionMode)
            held = f"{step} {unit}" if unit else f"step {exchange.number_to_string(step)}"
            raise VenueRejected(
                venue,
                f"create_order client id {order.client_order_id!r} refused before sending: "
                f"{what} {value:f} is finer than {order.symbol}'s {key} {held} "
                f"(ccxt would send {sent:f})",
            )


def _limit_sent(order: NewOrder) -> Decimal | None:
    return order.limit_price if CCXT_ORDER_TYPES[order.type] == "LIMIT" else None
