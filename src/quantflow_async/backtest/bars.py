"""OHLCV bars for the backtest engine: read from CSV or Parquet, or made by a seeded random walk.

Bars are numpy arrays (float64 prices, int64 UTC epoch microseconds for times), checked once
when they are made, so the engine's loop never meets a bad value. A bad file raises BarsError
naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quantflow_async.errors import BarsError as BarsError  # still importable from here

TIME_COLUMNS: Final = ("date", "datetime", "timestamp", "time")
PRICE_COLUMNS: Final = ("open", "high", "low", "close")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

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
        return _checked(source, stamps, arrays, {name: name for name in arrays}, "time", _index)

    def __len__(self) -> int:
        return len(self.times)

    def time_at(self, index: int) -> datetime:
        """The time of bar `index` as a timezone-aware UTC datetime."""
        return utc_datetime(int(self.times[index]))


def read_bars(path: str | Path) -> Bars:
    """Bars from a CSV file, or from a Parquet file (`.parquet`, `.pq`) when pyarrow is installed.

    The time column is named date, datetime, timestamp or time (any case), or holds the index
    pandas wrote: a CSV's first, unnamed column, or the index column `df.to_parquet()` names.
    Times are ISO 8601 (naive times are read as UTC) or epoch numbers (seconds, milliseconds,
    microseconds or nanoseconds, by magnitude); in Parquet also timestamps of any unit and
    zone, and dates (midnight UTC).
    open, high, low and close are required in any letter case; volume is optional.
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path)
    return _read_csv(path)


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
    step = _micros_of(interval)
    times = _micros(start) + step * np.arange(count, dtype=np.int64)
    return Bars(times, open_, high, low, close, volume, source=f"<synthetic seed={seed}>")


def _read_csv(path: Path) -> Bars:
    source = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            body: list[list[str]] = []
            lines: list[int] = []  # the file's line number of each row, blank lines skipped
            for row in reader:
                if row:
                    body.append(row)
                    lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BarsError(source, None, None, f"cannot be read: {exc}") from exc
    if header is None:
        raise BarsError(source, 1, None, "empty file: no header")
    columns = _find_columns(source, header, header_row=1)
    if not body:
        raise BarsError(source, 2, None, "no rows after the header")
    line = lines.__getitem__
    width = max(columns.values()) + 1
    for index, row in enumerate(body):
        if len(row) < width:
            missing = min(col for col in columns.values() if col >= len(row))
            raise BarsError(source, line(index), header[missing], "value missing")
    time_column = columns.pop("time")
    times = _parse_times(source, header[time_column], [r[time_column] for r in body], line)
    arrays = {
        name: _parse_floats(source, header[col], [r[col] for r in body], line)
        for name, col in columns.items()
    }
    names = {name: header[col] for name, col in columns.items()}
    return _checked(source, times, arrays, names, header[time_column], line)


def _read_parquet(path: Path) -> Bars:
    source = str(path)
    try:
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise BarsError(
            source,
            None,
            None,
            "reading Parquet needs pyarrow: pip install 'quantflow-async[analysis]'",
        ) from exc
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise BarsError(source, None, None, f"cannot be read as Parquet: {exc}") from exc
    header = list(table.column_names)
    columns = _find_columns(source, header, None, index_name=_pandas_index(table))
    if table.num_rows == 0:
        raise BarsError(source, None, None, "no rows")

    def line(index: int) -> int:
        return index + 1

    time_column = columns.pop("time")
    times = _parquet_times(source, table.column(time_column), header[time_column], line)
    arrays = {}
    for name, col in columns.items():
        values = table.column(col).to_pylist()
        arrays[name] = _parse_floats(source, header[col], values, line)
    names = {name: header[col] for name, col in columns.items()}
    return _checked(source, times, arrays, names, header[time_column], line)


def _pandas_index(table: Any) -> str | None:
    """The column pandas' `to_parquet()` kept its index in (`__index_level_0__` or the index's
    name, after the data columns), when the index is one column; None otherwise."""
    metadata = table.schema.pandas_metadata
    if metadata is None:  # written without pandas' metadata: its name for an index, if there
        return "__index_level_0__"
    index = metadata.get("index_columns") or []
    if len(index) == 1 and isinstance(index[0], str):  # a RangeIndex is a dict, and not stored
        return index[0]
    return None


def _parquet_times(source: str, column: Any, name: str, line: Callable[[int], int]) -> IntArray:
    pa = importlib.import_module("pyarrow")

    if pa.types.is_date(column.type):  # date32 and date64: midnight UTC of each day
        column = column.cast(pa.timestamp("ms"))
    if pa.types.is_timestamp(column.type):
        if column.null_count:
            first = column.is_null().to_pylist().index(True)
            raise BarsError(source, line(first), name, "time missing")
        if column.type.tz is None:
            column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        # safe=False: nanoseconds are truncated to the microseconds times are kept in
        micros = column.cast(pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64())
        return np.asarray(micros.to_numpy(), dtype=np.int64)
    return _parse_times(source, name, column.to_pylist(), line)


def _find_columns(
    source: str, header: Sequence[str], header_row: int | None, index_name: str | None = None
) -> dict[str, int]:
    """Map time/open/high/low/close/volume to column positions, or BarsError on the header.

    Without a column named as a time, the time is the `index_name` column (a DataFrame's index)
    or else an unnamed first column."""
    lowered = [cell.strip().lower() for cell in header]
    found: dict[str, int] = {}
    for name in (*PRICE_COLUMNS, "volume"):
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


def _parse_floats(
    source: str, name: str, values: Sequence[Any], line: Callable[[int], int]
) -> FloatArray:
    try:
        return np.array(values, dtype=np.float64)
    except (ValueError, TypeError):
        pass
    for index, value in enumerate(values):  # find the one that failed, to name it
        try:
            float(value)
        except (ValueError, TypeError):
            raise BarsError(source, line(index), name, f"not a number: {value!r}") from None
    raise AssertionError("unreachable: numpy refused a column that float() accepts")


def _parse_times(
    source: str, name: str, values: Sequence[Any], line: Callable[[int], int]
) -> IntArray:
    stamps = np.empty(len(values), dtype=np.int64)
    for index, value in enumerate(values):
        try:
            stamps[index] = _parse_time(value)
        except (ValueError, TypeError, OverflowError):
            raise BarsError(source, line(index), name, f"not a time: {value!r}") from None
    return stamps


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
    """An epoch number in seconds, ms, us or ns (told apart by size) as microseconds."""
    if not math.isfinite(number) or number < 0:
        raise ValueError(number)
    for limit, scale in ((1e11, 1e6), (1e14, 1e3), (1e17, 1.0)):
        if number < limit:
            return round(number * scale)
    return round(number / 1e3)


def utc_datetime(micros: int) -> datetime:
    """The timezone-aware UTC datetime of epoch microseconds."""
    return EPOCH + timedelta(microseconds=micros)


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _micros_of(moment - EPOCH)


def _micros_of(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def _index(index: int) -> int:
    return index


def _checked(
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
