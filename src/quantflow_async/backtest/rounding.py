"""Money without float noise: what a stored backtest keeps is rounded once, half-even.

Prices to the data's own precision (the most decimals in its price columns), fees and pnl
to a fixed number of decimals (8 unless told). The simulation and the metrics keep floats.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import Final

import numpy as np

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.settings import MAX_DECIMALS

MONEY_DECIMALS: Final = 8
# A price read from text with d decimals is within a few units in the last place of a
# multiple of 10**-d; anything further off has more decimals.
_TOLERANCE: Final = 8 * float(np.finfo(np.float64).eps)


def price_decimals(bars: Bars) -> int | None:
    """The most decimals any open, high, low or close has; None past MAX_DECIMALS (prices
    made by arithmetic, not read from text: they are stored by their shortest repr)."""
    remaining = np.concatenate((bars.open, bars.high, bars.low, bars.close))
    for decimals in range(MAX_DECIMALS + 1):
        scaled = remaining * 10.0**decimals
        off = np.abs(scaled - np.rint(scaled)) > _TOLERANCE * np.abs(scaled)
        remaining = remaining[off]
        if not len(remaining):
            return decimals
    return None


def rounded(value: float, decimals: int) -> Decimal:
    """`value` by its shortest repr, rounded half-even to `decimals` places (trailing zeros
    dropped, so 49.945908900000006 to 8 places is 49.9459089)."""
    number = Decimal(repr(value)).quantize(_quantum(decimals), rounding=ROUND_HALF_EVEN)
    if number.is_zero():
        return Decimal(0)
    if number == number.to_integral_value():
        return number.quantize(_quantum(0))
    return number.normalize()


def rounded_text(value: float, decimals: int) -> str:
    """The text of `rounded(value, decimals)`, the way the store keeps it, about three times
    quicker: a backtest makes one or two of these for every fill.

    Formatting to `decimals` places rounds the float's exact binary value, where `rounded`
    rounds its shortest repr. Below 10**(14 - decimals) the two are within a fiftieth of a
    quantum of each other, so they round apart only when the repr is itself a midpoint
    (`decimals` + 1 places, the last a 5); the value formatted to one place more then ends
    in 5 too. Those, and larger or non-finite values, take the Decimal route.
    """
    if -_FAST_BELOW[decimals] < value < _FAST_BELOW[decimals]:
        if (_FORMATS[decimals + 1] % value)[-1] != "5":
            text: str = _FORMATS[decimals] % value
            if decimals:
                text = text.rstrip("0").rstrip(".")
            return "0" if text == "-0" else text
    return format(rounded(value, decimals), "f")


_FAST_BELOW: Final = tuple(10.0 ** (14 - decimals) for decimals in range(MAX_DECIMALS + 1))
_FORMATS: Final = tuple(f"%.{decimals}f" for decimals in range(MAX_DECIMALS + 2))


@cache
def _quantum(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)
