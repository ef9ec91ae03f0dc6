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
    nan = np.isnan(values)
    first = int(np.argmin(nan)) if len(values) else 0
    if nan[first:].any():
        result = _rolling_mean_with_gaps(values.tolist(), n)
    else:  # NaN only before the first value, as a true range has: the common case, faster
        result = np.full(len(values), np.nan)
        result[first:] = _rolling_mean_dense(values[first:].tolist(), n)
    if backfill:
        valid = np.flatnonzero(~np.isnan(result))
        if len(valid):
            result[: valid[0]] = result[valid[0]]
    return result


def _rolling_mean_dense(data: list[float], n: int) -> FloatArray:
    """`_rolling_mean_with_gaps` for data without NaN: the running sum in a tight loop, the
    rest (a window of one repeated value, the sign rules) with numpy."""
    count = len(data)
    out = np.full(count, np.nan)
    if count < n:
        return out
    sums = [0.0] * count
    total = add_c = remove_c = 0.0
    for i in range(n):
        y = data[i] - add_c
        t = total + y
        add_c = t - total - y
        total = t
    sums[n - 1] = total
    i = n
    for old, value in zip(data, data[n:], strict=False):
        y = -old - remove_c
        t = total + y
        remove_c = t - total - y
        y = value - add_c
        total = t + y
        add_c = total - t - y
        sums[i] = total
        i += 1
    values = np.asarray(data)
    means = np.asarray(sums[n - 1 :]) / n
    below = np.concatenate(([0], np.cumsum(values < 0)))
    negative = below[n:] - below[:-n]  # negative values in each window
    means[((negative == 0) & (means < 0)) | ((negative == n) & (means > 0))] = 0.0
    # A window of n equal values is that value, whatever the sum's last bits say.
    changes = np.flatnonzero(np.diff(values)) + 1
    run_start = np.zeros(count, dtype=np.int64)
    run_start[changes] = changes
    run_start = np.maximum.accumulate(run_start)
    flat = (np.arange(count) - run_start + 1 >= n)[n - 1 :]
    means[flat] = values[n - 1 :][flat]
    out[n - 1 :] = means
    return out


def _rolling_mean_with_gaps(data: list[float], n: int) -> FloatArray:
    out = [math.nan] * len(data)
    total = add_c = remove_c = 0.0
    count = negative = same = 0
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
    return np.array(out, dtype=np.float64)


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
        self._distance = (atr * self.n_atr).tolist()

    def next(self) -> None:
        trades = self.trades
        if not trades:
            return
        close = self.data.close[-1]
        distance = self._distance[self.bar_index]
        for trade in trades:
            if trade.is_long:
                trade.sl = max(trade.sl or -math.inf, close - distance)
            else:
                trade.sl = min(trade.sl or math.inf, close + distance)
