"""Bars from a Parquet file, as pandas' `to_parquet()` or pyarrow writes them: the time in a
column or in the index pandas kept, as dates, timestamps of any unit and zone, text or numbers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quantflow_async.backtest.arrow_arrays import column_values
from quantflow_async.backtest.bars import (
    FIRST_MICROS,
    LAST_MICROS,
    TIME_RANGE,
    Bars,
    BarsError,
    FloatArray,
    IntArray,
    checked_bars,
    find_columns,
    parse_floats,
    parse_times,
)
from quantflow_async.backtest.bars_csv import MICROS_PER_UNIT
from quantflow_async.errors import MissingExtra
from quantflow_async.extras import require_extra


def read_parquet_bars(path: Path) -> Bars:
    """The bars of a Parquet file, as `read_bars` describes them; BarsError names the file,
    the 1-based row and the column of the first fault."""
    source = str(path)
    try:
        pq = require_extra("pyarrow.parquet", extra="analysis", purpose="reading Parquet")
    except MissingExtra as exc:
        raise BarsError(source, None, None, str(exc)) from exc
    try:
        found, regular = path.exists(), path.is_file() or path.is_dir()
    except OSError as exc:  # a name too long, a folder it may not look into
        raise BarsError(source, None, None, f"cannot be read: {exc}") from exc
    if not found:
        raise BarsError(source, None, None, "cannot be read: no such file or folder")
    if not regular:
        reason = "not a regular file (Parquet is read by seeking in it: copy it to a file)"
        raise BarsError(source, None, None, f"cannot be read as Parquet: {reason}")
    try:
        # A file is read as a file: pq.read_table() loads pandas; a folder (a dataset of
        # several files, as Spark writes them) takes read_table all the same.
        table = pq.ParquetFile(path).read() if path.is_file() else pq.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise BarsError(source, None, None, f"cannot be read as Parquet: {exc}") from exc
    header = list(table.column_names)
    columns = find_columns(source, header, None, index_name=_pandas_index(table))
    if table.num_rows == 0:
        raise BarsError(source, None, None, "no rows")

    def line(index: int) -> int:
        return index + 1

    time_column = columns.pop("time")
    times = _parquet_times(source, table.column(time_column), header[time_column], line)
    arrays = {
        name: _parquet_floats(source, table.column(col), header[col], line)
        for name, col in columns.items()
    }
    names = {name: header[col] for name, col in columns.items()}
    return checked_bars(source, times, arrays, names, header[time_column], line)


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
        # Naive or in any zone, the values count from the epoch in UTC.
        unit = column.type.unit
        raw = np.asarray(column_values(column.cast(pa.timestamp(unit)).cast(pa.int64()), np.int64))
        if unit == "ns":  # truncated to the microseconds times are kept in, as text is
            return raw // 1_000
        per_unit = MICROS_PER_UNIT[unit]
        # Past a datetime's years the product could wrap around int64 into a plausible time.
        outside = np.flatnonzero((raw < FIRST_MICROS // per_unit) | (raw > LAST_MICROS // per_unit))
        if len(outside):
            raise BarsError(source, line(int(outside[0])), name, TIME_RANGE)
        return raw * per_unit
    return parse_times(source, name, column.to_pylist(), line)


def _parquet_floats(source: str, column: Any, name: str, line: Callable[[int], int]) -> FloatArray:
    """A price or volume column as float64: float64 and int64 columns whole, anything else
    (other types, missing values: NaN) value by value."""
    pa = importlib.import_module("pyarrow")
    if column.null_count == 0 and column.type in (pa.float64(), pa.int64()):
        dtype = np.float64 if column.type == pa.float64() else np.int64
        return column_values(column, dtype).astype(np.float64)
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    readable = (
        pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_string,
        pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary,
        pa.types.is_fixed_size_binary, pa.types.is_null,
    )  # fmt: skip
    if not any(is_kind(kind) for is_kind in readable):
        text = str(kind) if len(str(kind)) <= 40 else f"{str(kind)[:40]}..."
        raise BarsError(source, None, name, f"holds {text} values, not numbers")
    return parse_floats(source, name, column.to_pylist(), line)
