"""Bars from a CSV file: read column by column by pyarrow's CSV reader, else row by row.

The rules for a value are Python's: a price is what `float()` reads, a time what
`datetime.fromisoformat()` or `float()` reads. pyarrow reads a subset of those texts, each to
the same number, about twenty times faster. A file it does not read that way (a time in a form
it does not know, a ragged row, a value the checks refuse) is read again row by row, which
reads everything the rules allow and names the line of the first bad value.
"""

from __future__ import annotations

import csv
import importlib
import io
import stat
from pathlib import Path
from typing import Any, Final

import numpy as np

from quantflow_async.backtest.arrow_arrays import column_values
from quantflow_async.backtest.bars import (
    Bars,
    BarsError,
    IntArray,
    checked_bars,
    epoch_numbers_to_micros,
    find_columns,
    parse_floats,
    parse_times,
)
from quantflow_async.validation import MICROS_PER_DAY

# Microseconds per unit of a pyarrow timestamp; nanoseconds are divided instead.
MICROS_PER_UNIT: Final = {"s": 1_000_000, "ms": 1_000, "us": 1}


def read_csv_bars(path: Path) -> Bars:
    """The bars of a CSV file, as `read_bars` describes them; BarsError names the file, the
    line (the header is line 1, blank lines are counted) and the column of the first fault.

    A file that is not a regular one (a pipe, `/dev/stdin`, a FIFO) is read once, into
    memory, since the readers open a file more than once."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return _read_csv(path)  # the readers say it as they say any fault opening it
    except OSError as exc:  # a name too long, a folder it may not look into
        raise BarsError(str(path), None, None, f"cannot be read: {exc}") from exc
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise BarsError(str(path), None, None, "cannot be read: a device, not a file")
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BarsError(str(path), None, None, f"cannot be read: {exc}") from exc
        return _read_csv(_InMemory(str(path), data))
    return _read_csv(path)


class _InMemory:
    """A file's bytes read once, opened again and again as a path is."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data

    def __str__(self) -> str:
        return self.name

    def open(self, *, newline: str, encoding: str) -> io.TextIOWrapper:
        return io.TextIOWrapper(io.BytesIO(self.data), encoding=encoding, newline=newline)


CsvSource = Path | _InMemory


def _read_csv(path: CsvSource) -> Bars:
    bars = read_csv_columns(path)
    return bars if bars is not None else read_csv_rows(path)


def read_csv_columns(path: CsvSource) -> Bars | None:
    """The bars of `path` as pyarrow reads them, or None where the rows must be read one by
    one: pyarrow refused the file, read a value differently, or a check failed (the row
    reader finds the same fault and names its line)."""
    found = _header(path)
    if found is None:
        return None
    header, header_end = found
    source = str(path)
    try:
        columns = find_columns(source, header, header_row=1)
    except BarsError:
        return None
    table = _arrow_table(path, header, columns, header_end)
    if table is None or table.num_rows == 0 or table.column_names != header:
        return None
    time_column = columns.pop("time")
    times = _times(table.column(time_column))
    if times is None:
        return None
    arrays = {name: column_values(table.column(col), np.float64) for name, col in columns.items()}
    names = {name: header[col] for name, col in columns.items()}
    try:
        return checked_bars(source, times, arrays, names, header[time_column], _no_line)
    except BarsError:
        return None


def _header(path: CsvSource) -> tuple[list[str], int] | None:
    """The first row of `path` as the row reader reads it, and the line it ends on; None if
    it cannot be read."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next((row for row in reader if _filled(row)), None)
            return None if header is None else (header, reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _arrow_table(
    path: CsvSource, header: list[str], columns: dict[str, int], header_end: int
) -> Any:
    """pyarrow's table of `path`, prices and volume as float64, the time column as pyarrow
    infers it; None if pyarrow refuses the file. Only text counts as missing: an empty value
    must fail, as `float('')` does, not become a null.

    Rows that all end in one empty value past the header (a comma at the end of each row, as
    some exports write) are read too, that column dropped."""
    pa = importlib.import_module("pyarrow")
    pa_csv = importlib.import_module("pyarrow.csv")
    floats = {header[col]: pa.float64() for name, col in columns.items() if name != "time"}
    options = pa_csv.ConvertOptions(
        column_types=floats,
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    source = pa.BufferReader(path.data) if isinstance(path, _InMemory) else path
    try:
        return pa_csv.read_csv(source, convert_options=options)
    except (pa.ArrowException, OSError, ValueError):
        pass
    if any("\n" in name or "\r" in name for name in header):
        return None  # its rows are not its lines: pyarrow's skip_rows would miss the data
    extra = "_" * (max(map(len, header)) + 1)  # a name no column has
    trailing = pa_csv.ReadOptions(column_names=[*header, extra], skip_rows=header_end)
    options.column_types = {**floats, extra: pa.string()}
    if isinstance(source, pa.BufferReader):
        source.seek(0)
    try:
        table = pa_csv.read_csv(source, read_options=trailing, convert_options=options)
    except (pa.ArrowException, OSError, ValueError):
        return None
    pc = importlib.import_module("pyarrow.compute")
    longest = pc.max(pc.binary_length(table.column(extra))).as_py()
    return table.drop_columns([extra]) if not longest else None


def _times(column: Any) -> IntArray | None:
    """Epoch microseconds of the time column as pyarrow typed it, or None for a type the
    row reader must read (text pyarrow did not take for a time, a time of day, booleans)."""
    pa = importlib.import_module("pyarrow")
    kind = column.type
    if column.null_count:
        return None
    if pa.types.is_date32(kind):  # ISO dates: midnight, read as UTC
        return column_values(column, np.int32).astype(np.int64) * MICROS_PER_DAY
    if pa.types.is_timestamp(kind):  # naive times (read as UTC) or converted to UTC
        if kind.tz not in (None, "UTC"):
            return None
        raw: IntArray = column_values(column, np.int64)
        if kind.unit in MICROS_PER_UNIT:
            return raw * MICROS_PER_UNIT[kind.unit]
        # fromisoformat drops the digits past microseconds: the floor, before 1970 too
        return raw // 1_000
    if kind == pa.int64():  # epoch numbers
        return epoch_numbers_to_micros(column_values(column, np.int64).astype(np.float64))
    if kind == pa.float64():
        return epoch_numbers_to_micros(column_values(column, np.float64))
    return None


def _filled(row: list[str]) -> bool:
    """Whether a row before the header holds anything but blanks: the header is the first
    that does."""
    return any(cell.strip() for cell in row)


def _no_line(index: int) -> int:
    """The line mapping of the column reader, which never reports a line: its faults are
    reported by the row reader."""
    return index


def read_csv_rows(path: CsvSource) -> Bars:
    """The bars of `path` read row by row with the `csv` module: slower, and the reference
    the column reader agrees with, value for value and fault for fault."""
    source = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            # A quoted value may hold line breaks: a row is named by the line it starts on.
            header, header_line, ended = None, 1, 0
            for row in reader:
                if _filled(row):
                    header, header_line = row, ended + 1
                    break
                ended = reader.line_num
            body: list[list[str]] = []
            lines: list[int] = []  # the file's line each row starts on, blank lines skipped
            ended = reader.line_num
            for row in reader:
                if row:
                    body.append(row)
                    lines.append(ended + 1)
                ended = reader.line_num
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from exc
    except (OSError, csv.Error) as exc:
        raise BarsError(source, None, None, f"cannot be read: {exc}") from exc
    if header is None:
        raise BarsError(source, 1, None, "empty file: no header")
    columns = find_columns(source, header, header_row=header_line)
    if not body:
        raise BarsError(source, header_line + 1, None, "no rows after the header")
    line = lines.__getitem__
    width = max(columns.values()) + 1
    for index, row in enumerate(body):
        if len(row) < width:
            missing = min(col for col in columns.values() if col >= len(row))
            raise BarsError(source, line(index), header[missing], "value missing")
        if len(row) > len(header) and any(value.strip() for value in row[len(header) :]):
            raise BarsError(
                source,
                line(index),
                None,
                f"{len(row)} values where the header names {len(header)} columns "
                "(a comma in a number, as a thousands separator, must be quoted)",
            )
    time_column = columns.pop("time")
    times = parse_times(source, header[time_column], [r[time_column] for r in body], line)
    arrays = {
        name: parse_floats(source, header[col], [r[col] for r in body], line)
        for name, col in columns.items()
    }
    names = {name: header[col] for name, col in columns.items()}
    return checked_bars(source, times, arrays, names, header[time_column], line)


_NOT_CSV: Final = {
    b"\x1f\x8b": "gzip-compressed: decompress it first",
    b"PAR1": "Parquet: name it .parquet",
}


def _not_text(path: CsvSource, exc: UnicodeDecodeError) -> BarsError:
    """BarsError naming the first line that is not UTF-8 (the decoder's position counts from
    the start of a chunk, not of the file), and what the file is if it is a known binary."""
    data = path.data if isinstance(path, _InMemory) else path.read_bytes()
    kind = next((what for magic, what in _NOT_CSV.items() if data.startswith(magic)), None)
    if kind is not None:
        return BarsError(str(path), None, None, f"not a CSV file: it is {kind}")
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as bad:
            byte = line[bad.start : bad.start + 1].hex()
            return BarsError(str(path), number, None, f"not UTF-8 text (byte 0x{byte})")
    return BarsError(str(path), None, None, f"not UTF-8 text: {exc.reason}")
