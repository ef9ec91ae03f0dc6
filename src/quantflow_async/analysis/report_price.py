"""The price a report draws: the bars the backtest ran on, read again, as at most 10,000 candles.

A backtest stores the name of its bars file (`config["data"]`), not the bars. They are read
again from that file, or from the one given, and used only if they are the bars the backtest
ran on: the same count, the same first and last time. Longer series are drawn as candles of
several consecutive bars each (open of the first, highest high, lowest low, close of the
last), as backtesting.py does, so a page of 200,000 bars stays light to load and pan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from quantflow_async.errors import BarsError, InvalidValue
from quantflow_async.records import Backtest

FloatArray = npt.NDArray[np.float64]

MAX_CANDLES: Final = 10_000


@dataclass(frozen=True, slots=True)
class Candles:
    """OHLC candles, each of `per_candle` consecutive bars of `bars` read from `source`;
    `times` are each candle's first bar, in epoch seconds."""

    source: str
    bars: int
    per_candle: int
    times: FloatArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray

    def __len__(self) -> int:
        return len(self.times)

    @property
    def described(self) -> str:
        """'30,000 bars of alpha.csv, 3,000 candles of 10 bars each'."""
        shown = f"{self.bars:,} bars of {self.source}"
        if self.per_candle == 1:
            return shown
        return f"{shown}, {len(self):,} candles of {self.per_candle} bars each"


@dataclass(frozen=True, slots=True)
class PriceLookup:
    """The candles of a backtest's bars, or None and why they could not be drawn."""

    candles: Candles | None
    reason: str = ""


def find_price(backtest: Backtest, data: str | Path | None = None) -> PriceLookup:
    """The price of `backtest` from `data`, or else from the file it names as its data.

    Bars from `data` that are not the backtest's raise InvalidValue; its own file, gone or
    changed since, gives a PriceLookup without candles that says so. A relative name is read
    from the current folder, as it was when the backtest was run.
    """
    from quantflow_async.backtest.bars import read_bars

    stored = (backtest.config or {}).get("data")
    path = Path(data) if data is not None else Path(stored) if isinstance(stored, str) else None
    if path is None:
        return PriceLookup(None, f"backtest {backtest.id} names no bars file")
    if data is None and not path.is_file():
        return PriceLookup(None, f"its bars file {str(path)!r} is not there")
    try:
        bars = read_bars(path)
    except BarsError as exc:
        if data is not None:
            raise InvalidValue("data", str(exc)) from exc
        return PriceLookup(None, f"its bars file cannot be read: {exc}")
    first, last = bars.time_at(0), bars.time_at(len(bars) - 1)
    expected = (backtest.config or {}).get("bars")
    if (first, last) != (backtest.start_date, backtest.end_date) or expected not in (
        None,
        len(bars),
    ):
        mismatch = (
            f"{path} has {len(bars):,} bars from {first:%Y-%m-%d %H:%M} to "
            f"{last:%Y-%m-%d %H:%M}, not the bars backtest {backtest.id} ran on "
            f"({_count(expected)}from {backtest.start_date:%Y-%m-%d %H:%M} to "
            f"{backtest.end_date:%Y-%m-%d %H:%M})"
        )
        if data is not None:
            raise InvalidValue("data", mismatch)
        return PriceLookup(None, mismatch)
    times = bars.times.astype(np.float64) / 1e6
    return PriceLookup(
        candles(str(path), times, bars.open, bars.high, bars.low, bars.close, MAX_CANDLES)
    )


def _count(expected: object) -> str:
    return f"{expected:,} bars " if isinstance(expected, int) else ""


def candles(
    source: str,
    times: FloatArray,
    open: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    max_candles: int = MAX_CANDLES,
) -> Candles:
    """Bars merged into at most `max_candles` candles of equally many consecutive bars."""
    count = len(times)
    per_candle = max(1, math.ceil(count / max_candles))
    starts = np.arange(0, count, per_candle)
    ends = np.minimum(starts + per_candle, count) - 1
    return Candles(
        source=source,
        bars=count,
        per_candle=per_candle,
        times=np.asarray(times[starts], dtype=np.float64),
        open=np.asarray(open[starts], dtype=np.float64),
        high=np.maximum.reduceat(high, starts).astype(np.float64),
        low=np.minimum.reduceat(low, starts).astype(np.float64),
        close=np.asarray(close[ends], dtype=np.float64),
    )
