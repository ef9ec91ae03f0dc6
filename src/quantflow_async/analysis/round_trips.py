"""A backtest's trades from entry to exit, rebuilt from its stored fills for its report.

Fills are matched first in, first out per symbol, as the broker closes its lots: a fill that
goes against the open position closes the oldest lots first, and what is left of it opens a
new one. A trade's pnl is net of its share of both fills' fees, pro rata to the quantity.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# size, entry time, exit time, entry price, exit price, pnl, entry fill, exit fill
_Row = tuple[float, float, float, float, float, float, int, int]


class StoredFill(NamedTuple):
    """What a round trip needs of a stored fill: `quantity` > 0 buys, < 0 sells."""

    id: int
    symbol: str
    quantity: float
    price: float
    fee: float
    time: float  # epoch seconds


@dataclass(slots=True)
class _Lot:
    fill: StoredFill
    left: float  # signed, as the fill's quantity


@dataclass(frozen=True, slots=True)
class RoundTrips:
    """The closed trades, one row per index, in the order they closed; `size` < 0 is a
    short. Times are epoch seconds; `entry_fill` and `exit_fill` are the stored fills' ids."""

    size: FloatArray
    entry_time: FloatArray
    exit_time: FloatArray
    entry_price: FloatArray
    exit_price: FloatArray
    pnl: FloatArray
    entry_fill: IntArray
    exit_fill: IntArray

    def __len__(self) -> int:
        return len(self.size)

    @property
    def return_pct(self) -> FloatArray:
        """Each trade's pnl against what its entry cost, in percent."""
        cost = np.abs(self.size * self.entry_price)
        return np.divide(self.pnl * 100, cost, out=np.zeros_like(cost), where=cost > 0)


@dataclass(slots=True)
class RoundTripBuilder:
    """Feed fills in execution order with `add`; `build` gives the trades closed so far."""

    _open: dict[str, deque[_Lot]] = field(default_factory=dict)
    _rows: list[_Row] = field(default_factory=list)

    def add(self, fill: StoredFill) -> None:
        lots = self._open.setdefault(fill.symbol, deque())
        wanted = fill.quantity
        while wanted and lots and (lots[0].left > 0) != (wanted > 0):
            lot = lots[0]
            taken = min(abs(wanted), abs(lot.left))
            self._close(lot.fill, fill, math.copysign(taken, lot.left))
            lot.left -= math.copysign(taken, lot.left)
            wanted -= math.copysign(taken, wanted)
            if not lot.left:
                lots.popleft()
        if wanted:
            lots.append(_Lot(fill, wanted))

    def _close(self, entry: StoredFill, exit: StoredFill, size: float) -> None:
        fees = abs(size) * (_fee_per_unit(entry) + _fee_per_unit(exit))
        pnl = (exit.price - entry.price) * size - fees
        self._rows.append(
            (size, entry.time, exit.time, entry.price, exit.price, pnl, entry.id, exit.id)
        )

    def build(self) -> RoundTrips:
        """The trades closed so far."""
        return _columns(self._rows)

    def still_open(self) -> RoundTrips:
        """The lots still open, as trades with no exit yet: exit time, price and pnl NaN, exit
        fill 0."""
        nan = math.nan
        rows = [
            (lot.left, lot.fill.time, nan, lot.fill.price, nan, nan, lot.fill.id, 0)
            for lots in self._open.values()
            for lot in lots
        ]
        return _columns(sorted(rows, key=lambda row: row[1]))


def _columns(rows: list[_Row]) -> RoundTrips:
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    size, entry_time, exit_time, entry_price, exit_price, pnl = (
        np.array(column, dtype=np.float64) for column in columns[:6]
    )
    entry_fill, exit_fill = (np.array(column, dtype=np.int64) for column in columns[6:])
    return RoundTrips(
        size, entry_time, exit_time, entry_price, exit_price, pnl, entry_fill, exit_fill
    )


def _fee_per_unit(fill: StoredFill) -> float:
    return fill.fee / abs(fill.quantity) if fill.quantity else 0.0
