"""OHLCV bars for the backtest engine: read from CSV or Parquet, or made by a seeded random walk.

Bars are numpy arrays (float64 prices, int64 UTC epoch microseconds for times), checked once
when they are made, so the engine's loop never meets a bad value. A bad file raises BarsError
naming the file, the line and the column. This module holds the series, its checks and the
rules for reading a value; `bars_csv` and `bars_parquet` read the two file formats.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quantflow_async.errors import BarsError as BarsError  # still importable from here
from quantflow_async.validation import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    MICROS_PER_DAY,
    epoch_micros,
    from_epoch_micros,
    span_micros,
)

TIME_COLUMNS: Final = ("date", "datetime", "timestamp", "time")
PRICE_COLUMNS: Final = ("open", "high", "low", "close")
EPOCH_UNITS: Final = ((1e11, 1e6), (1e14, 1e3), (1e17, 1.0))
"""An epoch number below each limit is read in the unit its scale makes microseconds of
(seconds, milliseconds, microseconds); from 1e17 on it is nanoseconds."""
DATE_DIGITS: Final = (1e7, 1e8)
"""A whole number in this range (eight digits) is a date in ISO 8601's basic form, YYYYMMDD, as
pandas reads one: 20240102 is 2024-01-02, not a second of 1970-1973."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class Bars:
    """A checked OHLCV series: times strictly increasing, prices finite and > 0, high >= low.

    `times` are UTC epoch microseconds. `volume` is NaN where the source had no volume column.
    Build one with `read_bars`, `synthetic_bars` or `Bars.from_arrays`.
    """

    times: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    source: str = "<arrays>"

    def __post_init__(self) -> None:
        for name in ("times", "open", "high", "low", "close", "volume"):
            view = getattr(self, name).view()
            view.flags.writeable = False  # bars are shared by every run over them
            object.__setattr__(self, name, view)

    @classmethod
    def from_arrays(
        cls,
        times: Sequence[datetime] | Sequence[int] | IntArray,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike | None = None,
        *,
        source: str = "<arrays>",
    ) -> Bars:
        """Bars from in-memory columns, checked as a file's would be; `BarsError.row` is then
        the 0-based index. Times are datetimes (naive ones are UTC) or epoch microseconds."""
        if isinstance(times, np.ndarray):
            stamps = np.asarray(times, dtype=np.int64)
        else:
            stamps = np.array(
                [_micros(t) if isinstance(t, datetime) else int(t) for t in times], dtype=np.int64
            )
        columns = {"open": open, "high": high, "low": low, "close": close}
        if volume is not None:
            columns["volume"] = volume
        arrays = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
        return checked_bars(source, stamps, arrays, {name: name for name in arrays}, "time", _index)

    def __len__(self) -> int:
        return len(self.times)

    def time_at(self, index: int) -> datetime:
        """The time of bar `index` as a timezone-aware UTC datetime."""
        return _bar_time(int(self.times[index]))


def read_bars(path: str | Path) -> Bars:
    """Bars from a CSV file, or from a Parquet file (`.parquet`, `.pq`).

    The time column is named date, datetime, timestamp or time (any case), or holds the index
    pandas wrote: a CSV's first, unnamed column, or the index column `df.to_parquet()` names.
    Times are ISO 8601 (naive times are read as UTC) or epoch numbers (seconds, milliseconds,
    microseconds or nanoseconds, by magnitude), and eight digits are a date (YYYYMMDD); in
    Parquet also timestamps of any unit and zone, and dates (midnight UTC).
    open, high, low and close are required in any letter case; volume is optional.
    """
    # The readers import pyarrow, and they import this module: both load on the first read.
    from quantflow_async.backtest.bars_csv import read_csv_bars
    from quantflow_async.backtest.bars_parquet import read_parquet_bars

    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet_bars(path)
    return read_csv_bars(path)


def synthetic_bars(
    count: int,
    *,
    seed: int = 0,
    start: datetime = datetime(2020, 1, 1, tzinfo=UTC),
    interval: timedelta = timedelta(days=1),
    drift: float = 0.0002,
    volatility: float = 0.01,
    price: float = 100.0,
) -> Bars:
    """A seeded geometric random walk of `count` bars, `interval` apart from `start`.

    `drift` and `volatility` are the mean and standard deviation of the log return per bar.
    Each bar opens near the previous close (a small gap), and its high and low reach beyond
    the open and close by a random amount, so high >= max(open, close) and 0 < low <=
    min(open, close) always hold. The same arguments give the same bars.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval}")
    rng = np.random.default_rng(seed)
    steps = rng.normal(drift, volatility, count)
    close = price * np.exp(np.cumsum(steps))
    previous = np.concatenate(([price], close[:-1]))
    open_ = previous * np.exp(rng.normal(0.0, volatility / 5, count))
    reach = np.abs(rng.normal(0.0, volatility / 2, (2, count)))
    high = np.maximum(open_, close) * np.exp(reach[0])
    low = np.minimum(open_, close) * np.exp(-reach[1])
    volume = np.round(rng.lognormal(13.0, 0.5, count))
    step = span_micros(interval)
    times = _micros(start) + step * np.arange(count, dtype=np.int64)
    return Bars(times, open_, high, low, close, volume, source=f"<synthetic seed={seed}>")


def find_columns(
    source: str, header: Sequence[str], header_row: int | None, index_name: str | None = None
) -> dict[str, int]:
    """Map time/open/high/low/close/volume to column positions, or BarsError on the header.

    Without a column named as a time, the time is the `index_name` column (a DataFrame's index)
    or else an unnamed first column."""
    lowered = [cell.strip().lower() for cell in header]
    found: dict[str, int] = {}
    for name in (*PRICE_COLUMNS, "volume"):
        if lowered.count(name) > 1:
            names = ", ".join(shown(header[i], 30) for i, low in enumerate(lowered) if low == name)
            raise BarsError(source, header_row, name, f"more than one {name} column: {names}")
        if name in lowered:
            found[name] = lowered.index(name)
        elif name != "volume":
            raise BarsError(source, header_row, name, "column missing")
    candidates = [i for i, cell in enumerate(lowered) if cell in TIME_COLUMNS]
    if len(candidates) > 1:
        names = ", ".join(repr(header[i]) for i in candidates)
        raise BarsError(
            source, header_row, header[candidates[1]], f"more than one time column: {names}"
        )
    if candidates:
        found["time"] = candidates[0]
    elif index_name is not None and index_name in header:
        found["time"] = header.index(index_name)
    elif lowered and lowered[0] == "":
        found["time"] = 0
    else:
        raise BarsError(
            source,
            header_row,
            "date",
            "no time column (date, datetime, timestamp, time or unnamed first)",
        )
    return found


def parse_floats(
    source: str, name: str, values: Sequence[Any], line: Callable[[int], int]
) -> FloatArray:
    try:
        floats = np.array(values, dtype=np.float64)
        if floats.ndim == 1:
            return floats
    except (ValueError, TypeError):
        pass
    for index, value in enumerate(values):  # find the one that failed, to name it
        try:
            float(value)
        except (ValueError, TypeError):
            raise BarsError(source, line(index), name, f"not a number: {shown(value)}") from None
    raise AssertionError("unreachable: numpy refused a column that float() accepts")


def shown(value: Any, limit: int = 60) -> str:
    """`value` in a message: its repr, cut short (an unclosed quote takes the rest of a file
    into one value)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def parse_times(
    source: str, name: str, values: Sequence[Any], line: Callable[[int], int]
) -> IntArray:
    stamps = np.empty(len(values), dtype=np.int64)
    for index, value in enumerate(values):
        try:
            stamps[index] = _parse_time(value)
        except (ValueError, TypeError, OverflowError):
            raise BarsError(source, line(index), name, _not_a_time(value)) from None
    return stamps


def _not_a_time(value: Any) -> str:
    if not isinstance(value, str | int | float):  # a type no rule reads
        return f"not a time: {shown(value)}"
    try:
        number = float(value)
    except (ValueError, TypeError, OverflowError):
        return f"not a time: {shown(value)}"
    if _is_date_digits(number):
        return f"not a time: {shown(value)} (eight digits are read as a date, YYYYMMDD)"
    return f"not a time: {shown(value)}"


def _is_date_digits(number: float) -> bool:
    return DATE_DIGITS[0] <= number < DATE_DIGITS[1] and number.is_integer()


def _parse_time(value: Any) -> int:
    """Epoch microseconds of an ISO 8601 text, a datetime, or an epoch number."""
    if isinstance(value, datetime):
        return _micros(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return _micros(datetime.fromisoformat(text))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise TypeError(value)
    return _epoch_number_to_micros(number)


def _epoch_number_to_micros(number: float) -> int:
    """An epoch number in seconds, ms, us or ns (told apart by size), or a YYYYMMDD date, as
    microseconds."""
    if not math.isfinite(number) or number < 0:
        raise ValueError(number)
    if _is_date_digits(number):
        digits = int(number)
        return _micros(datetime(digits // 10_000, digits // 100 % 100, digits % 100))
    for limit, scale in EPOCH_UNITS:
        if number < limit:
            return round(number * scale)
    return round(number / 1e3)


def epoch_numbers_to_micros(numbers: FloatArray) -> IntArray | None:
    """`_epoch_number_to_micros` of every number at once (the same float arithmetic and
    half-even rounding), or None when one of them is refused there."""
    if not (np.isfinite(numbers) & (numbers >= 0)).all():
        return None
    limits = np.array([limit for limit, _ in EPOCH_UNITS])
    scales = np.array([scale for _, scale in EPOCH_UNITS] + [1.0])
    unit = np.searchsorted(limits, numbers, side="right")  # index of the first limit above
    # Nanoseconds are divided, as the rule does, not multiplied by 1e-3: the last bit differs.
    micros = np.rint(np.where(unit == len(limits), numbers / 1e3, numbers * scales[unit]))
    if (micros >= 2.0**63).any():  # past int64: the rule's int does not fit the array either
        return None
    stamps = micros.astype(np.int64)
    dated = (numbers >= DATE_DIGITS[0]) & (numbers < DATE_DIGITS[1]) & (numbers % 1 == 0)
    if dated.any():
        days = _days_of_date_digits(numbers[dated].astype(np.int64))
        if days is None:
            return None
        stamps[dated] = days * MICROS_PER_DAY
    return stamps


def _days_of_date_digits(digits: IntArray) -> IntArray | None:
    """Days since the epoch of YYYYMMDD numbers, or None when one is not a date."""
    year, month, day = digits // 10_000, digits // 100 % 100, digits % 100
    if ((month < 1) | (month > 12) | (day < 1)).any():
        return None
    month_start = ((year - 1970) * 12 + month - 1).astype("datetime64[M]").astype("datetime64[D]")
    next_month = ((year - 1970) * 12 + month).astype("datetime64[M]").astype("datetime64[D]")
    if (day > (next_month - month_start).astype(np.int64)).any():
        return None
    days: IntArray = month_start.astype(np.int64) + day - 1
    return days


utc_datetime: Final = from_epoch_micros
"""The timezone-aware UTC datetime of epoch microseconds (the engine's name for it)."""

# Every fill and closed trade names its bar's time, and a sweep's worker runs config after
# config over the same bars: the datetimes of the bars named last are kept, a bounded number.
_bar_time: Final = functools.lru_cache(maxsize=1 << 16)(from_epoch_micros)


def _micros(moment: datetime) -> int:
    """Epoch microseconds of `moment`, a naive one read as UTC."""
    return epoch_micros(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment)


def _index(index: int) -> int:
    return index


FIRST_MICROS: Final = _micros(EARLIEST_INSTANT)
LAST_MICROS: Final = _micros(LATEST_INSTANT)
"""The first and last instants a bar's time may be: those both stores give back."""
TIME_RANGE: Final = (
    f"time outside {EARLIEST_INSTANT.replace(tzinfo=None).isoformat(' ')} to "
    f"{LATEST_INSTANT.replace(tzinfo=None).isoformat(' ')} UTC, the instants the store keeps"
)


def check_storable(bars: Bars) -> None:
    """BarsError unless `bars` can be stored as a backtest, whose last bar comes after its
    first: a single bar cannot."""
    if len(bars) < 2:
        reason = "one bar: a stored backtest needs a last bar after its first"
        raise BarsError(bars.source, None, None, reason)


def checked_bars(
    source: str,
    times: IntArray,
    arrays: Mapping[str, FloatArray],
    names: Mapping[str, str],
    time_name: str,
    line: Callable[[int], int],
) -> Bars:
    """Bars after the checks every source shares; errors name the first offending row."""
    count = len(times)
    if count == 0:
        raise BarsError(source, None, None, "no rows")
    for name, values in arrays.items():
        if len(values) != count:
            raise BarsError(source, None, names[name], f"{len(values)} values for {count} times")
        # volume may be 0 (no trades in the bar); a price must be > 0 for sizing to mean anything
        floor_ok = values >= 0 if name == "volume" else values > 0
        bad = np.flatnonzero(~(np.isfinite(values) & floor_ok))
        if len(bad):
            first = int(bad[0])
            need = ">= 0" if name == "volume" else "> 0"
            raise BarsError(
                source,
                line(first),
                names[name],
                f"must be a finite number {need}, got {values[first]}",
            )
    outside = np.flatnonzero((times < FIRST_MICROS) | (times > LAST_MICROS))
    if len(outside):
        index = int(outside[0])
        raise BarsError(source, line(index), time_name, TIME_RANGE)
    steps = np.flatnonzero(np.diff(times) <= 0)
    if len(steps):
        index = int(steps[0]) + 1
        reason = "time repeated" if times[index] == times[index - 1] else "time out of order"
        raise BarsError(source, line(index), time_name, reason)
    inverted = np.flatnonzero(arrays["high"] < arrays["low"])
    if len(inverted):
        index = int(inverted[0])
        high, low = arrays["high"][index], arrays["low"][index]
        raise BarsError(source, line(index), names["high"], f"high {high} is below low {low}")
    volume = arrays.get("volume")
    if volume is None:
        volume = np.full(count, np.nan)
    return Bars(
        times,
        arrays["open"],
        arrays["high"],
        arrays["low"],
        arrays["close"],
        volume,
        source=source,
    )
