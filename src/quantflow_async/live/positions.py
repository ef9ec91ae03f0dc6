"""A position moved by one fill: exact Decimal arithmetic, long and short, with flips.

Buying adds to a long (or covers a short), selling the reverse. Adding averages the entry price
by quantity; reducing realizes (exit - entry) x closed quantity (reversed for a short) and
keeps the entry price; going through zero closes the old side and opens the new one at the
fill's price. Prices and pnl keep at most 18 digits after the point, as the columns store.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Final

from quantflow_async.live.orders import ARITHMETIC, Position, stored_decimal
from quantflow_async.record_maker import record_maker
from quantflow_async.records import Side

_ZERO: Final = Decimal(0)
# Every fill makes one: see record_maker.
_make_position: Final = record_maker(Position, [field.name for field in fields(Position)])


def flat(strategy_id: int, venue: str, symbol: str, at: datetime) -> Position:
    return Position(strategy_id, venue, symbol, _ZERO, None, _ZERO, _ZERO, at)


def apply_fill(
    position: Position,
    *,
    side: Side,
    quantity: Decimal,
    price: Decimal,
    fee: Decimal,
    at: datetime,
) -> tuple[Position, Decimal]:
    """The position after the fill, and the pnl the fill realized (zero when it only adds)."""
    held = position.quantity
    signed = quantity if side == "buy" else -quantity
    after = ARITHMETIC.add(held, signed)
    realized = _ZERO
    if held == 0 or (held > 0) == (signed > 0):
        average = _weighted(abs(held), position.average_price or _ZERO, quantity, price)
    else:
        closed = min(quantity, abs(held))
        entry = position.average_price or _ZERO
        gain = ARITHMETIC.multiply(closed, ARITHMETIC.subtract(price, entry))
        realized = stored_decimal(gain if held > 0 else -gain)
        if after == 0:
            average = None
        elif (after > 0) != (held > 0):
            average = price  # flipped: what is held now was opened by this fill
        else:
            average = entry
    moved = _make_position(
        position.strategy_id,
        position.venue,
        position.symbol,
        after,
        average,
        ARITHMETIC.add(position.realized_pnl, realized),
        ARITHMETIC.add(position.fees, fee),
        at,
    )
    return moved, realized


def _weighted(held: Decimal, entry: Decimal, added: Decimal, price: Decimal) -> Decimal:
    cost = ARITHMETIC.add(ARITHMETIC.multiply(held, entry), ARITHMETIC.multiply(added, price))
    return stored_decimal(ARITHMETIC.divide(cost, ARITHMETIC.add(held, added)))
