"""`TrailingStrategy`: a stop-loss that follows the price at a multiple of the average true
range, as backtesting.py's `lib.TrailingStrategy`, written on the public API alone.

Subclass it and call `super().init()` and `super().next()`; on every bar it moves each open
trade's `sl` towards the price (never away): a long's to `close - n_atr * atr`, a short's to
`close + n_atr * atr`. Copy it to trail by anything else.
"""

from __future__ import annotations

import math

import numpy as np

from quantflow_async.backtest.bars import FloatArray
from quantflow_async.backtest.strategy import Strategy


def average_true_range(
    high: FloatArray, low: FloatArray, close: FloatArray, periods: int
) -> FloatArray:
    """The mean true range of `periods` bars, its warm-up filled with the first value (the
    peer's `rolling(n).mean().bfill()`; the first bar's true range has no previous close)."""
    previous = np.concatenate(([np.nan], close[:-1]))
    with np.errstate(invalid="ignore"):
        true_range = np.max([high - low, np.abs(previous - high), np.abs(previous - low)], axis=0)
    return rolling_mean(true_range, periods, backfill=True)


def rolling_mean(values: FloatArray, n: int, *, backfill: bool = False) -> FloatArray:
    """pandas' `rolling(n).mean()`, operation for operation: a window holding a NaN is NaN.

    Its running sum with compensation (one for what enters the window, one for what leaves),
    so the last bits agree with the peer's and a close exactly at a stop ties as it does.
    """
    data = values.tolist()
    out = [math.nan] * len(data)
    total = add_c = remove_c = 0.0
    count = negative = 0
    same = 0
    previous = data[0] if data else math.nan
    for i, value in enumerate(data):
        if i >= n:
            old = data[i - n]
            if old == old:  # not NaN
                count -= 1
                y = -old - remove_c
                t = total + y
                remove_c = t - total - y
                total = t
                negative -= old < 0
        if value == value:
            count += 1
            y = value - add_c
            t = total + y
            add_c = t - total - y
            total = t
            negative += value < 0
            same = same + 1 if value == previous else 1
            previous = value
        if count >= n:
            mean = total / count
            if same >= count:
                mean = previous
            elif (negative == 0 and mean < 0) or (negative == count and mean > 0):
                mean = 0.0
            out[i] = mean
    result = np.array(out, dtype=np.float64)
    if backfill:
        valid = np.flatnonzero(~np.isnan(result))
        if len(valid):
            result[: valid[0]] = result[valid[0]]
    return result


class TrailingStrategy(Strategy):
    """A strategy whose open trades carry a stop-loss `n_atr` average true ranges from the
    close, moved on every bar only towards the price. `atr_periods` bars make the average."""

    n_atr: float = 6.0
    atr_periods: int = 100

    def init(self) -> None:
        data = self.data
        atr = average_true_range(
            np.asarray(data.high), np.asarray(data.low), np.asarray(data.close), self.atr_periods
        )
        self._atr = atr.tolist()

    def next(self) -> None:
        index = self.bar_index
        close = self.data.close[-1]
        distance = self._atr[index] * self.n_atr
        for trade in self.trades:
            if trade.is_long:
                trade.sl = max(trade.sl or -math.inf, close - distance)
            else:
                trade.sl = min(trade.sl or math.inf, close + distance)
