"""Bars files a hostile user gives: times past a datetime's years, Parquet columns of the wrong
kind, a pipe instead of a file, a quote left open. Each is one BarsError naming the file, the
row and the column, or is read as the rules say; none is read wrong."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quantflow_async.backtest import BarsError, read_bars

PRICES = {"open": [10.0, 11.0], "high": [12.0, 13.0], "low": [9.0, 10.0], "close": [11.0, 12.0]}
CSV = "date,open,high,low,close\n2024-01-01,10,12,9,11\n2024-01-02,11,13,10,12\n"
OUTSIDE = r"time outside 0001-01-01 00:00:00.000001 to 9999-12-31 23:59:59.999998 UTC"


def parquet(tmp_path: Path, columns: dict[str, pa.Array | list[object]]) -> Path:
    path = tmp_path / "bars.parquet"
    pq.write_table(pa.table({**PRICES, **columns}), path)
    return path


@pytest.mark.parametrize(
    ("times", "row"),
    [
        (pa.array([10**12, 10**12 + 1], pa.timestamp("s")), 1),
        (pa.array([1, 2**61], pa.timestamp("ms")), 2),  # wrapped around int64 as microseconds
        (pa.array([0, 2**31 - 3], pa.date32()), 2),
    ],
    ids=["seconds", "milliseconds", "days"],
)
def test_a_parquet_time_past_the_year_9999_is_refused_not_wrapped(
    tmp_path: Path, times: pa.Array, row: int
) -> None:
    path = parquet(tmp_path, {"date": times})
    with pytest.raises(BarsError, match=OUTSIDE) as raised:
        read_bars(path)
    assert (raised.value.row, raised.value.column) == (row, "date")


def test_parquet_nanoseconds_are_cut_to_microseconds(tmp_path: Path) -> None:
    times = pa.array([1_704_067_200_000_000_999, 1_704_153_600_000_001_000], pa.timestamp("ns"))
    bars = read_bars(parquet(tmp_path, {"date": times}))
    assert bars.time_at(0) == datetime(2024, 1, 1, tzinfo=UTC)
    assert bars.times[1] - bars.times[0] == 86_400_000_001


@pytest.mark.parametrize(
    ("close", "kind"),
    [
        (pa.array([True, True]), "bool"),
        (pa.array([[11.0], [12.0]]), "list<.*: double>"),
    ],
    ids=["booleans", "lists"],
)
def test_a_parquet_price_column_that_holds_no_numbers_is_refused(
    tmp_path: Path, close: pa.Array, kind: str
) -> None:
    days = pa.array([datetime(2024, 1, 1), datetime(2024, 1, 2)], pa.timestamp("s"))
    path = parquet(tmp_path, {"date": days, "close": close})
    with pytest.raises(BarsError, match=f"column 'close': holds {kind} values, not numbers"):
        read_bars(path)


def test_a_missing_parquet_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(BarsError, match="missing.parquet: cannot be read: no such file"):
        read_bars(tmp_path / "missing.parquet")


def test_a_value_left_open_by_a_quote_is_named_by_its_line_and_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = "".join(f"2024-01-{day:02},11,13,10,12\n" for day in range(3, 29))
    (tmp_path / "bars.csv").write_text(CSV + '2024-01-03,11,13,10,"12\n' + rows)
    monkeypatch.chdir(tmp_path)  # the message names the file as given: not a long temp path
    with pytest.raises(BarsError) as raised:
        read_bars(Path("bars.csv"))
    assert (raised.value.row, raised.value.column) == (4, "close")
    assert len(str(raised.value)) < 200


def test_blank_lines_before_the_header_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("\n \t\n\n" + CSV)
    assert read_bars(path).close.tolist() == [11.0, 12.0]


def test_a_fifo_is_read_once_as_a_file_is(tmp_path: Path) -> None:
    fifo = tmp_path / "bars.csv"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(CSV,))
    writer.start()
    try:
        assert read_bars(fifo).close.tolist() == [11.0, 12.0]
    finally:
        writer.join(10)


def test_bars_piped_into_the_command_are_read(tmp_path: Path) -> None:
    """`--data /dev/stdin`, as `cat bars.csv | quantflow ...` gives them."""
    code = (
        "import sys\n"
        "from quantflow_async.backtest import read_bars\n"
        "print(len(read_bars(sys.argv[1])))"
    )
    read = subprocess.run(
        [sys.executable, "-c", code, "/dev/stdin"], input=CSV, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert (read.returncode, read.stdout) == (0, "2\n"), read.stderr


def test_bytes_that_are_not_utf_8_are_named_by_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    rows = "".join(f"2024-01-{day:02},11,13,10,12\n" for day in range(3, 29))
    path.write_bytes(CSV.encode() + rows.encode() + "2024-01-29,11,13,10,12é\n".encode("latin-1"))
    with pytest.raises(BarsError, match=r"bars.csv, row 30: not UTF-8 text \(byte 0xe9\)"):
        read_bars(path)


def test_a_compressed_file_is_told_to_be_decompressed(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(gzip.compress(CSV.encode()))
    with pytest.raises(BarsError, match="not a CSV file: it is gzip-compressed: decompress it"):
        read_bars(path)


def test_the_last_instant_the_store_keeps_is_a_bar_time_and_the_next_is_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bars.csv"
    last = "9999-12-31T23:59:59.999998"
    path.write_text(f"date,open,high,low,close\n2024-01-01,10,12,9,11\n{last},11,13,10,12\n")
    assert read_bars(path).time_at(1) == datetime(9999, 12, 31, 23, 59, 59, 999_998, tzinfo=UTC)
    path.write_text(path.read_text().replace(last, "9999-12-31T23:59:59.999999"))
    with pytest.raises(BarsError, match=OUTSIDE):
        read_bars(path)


def test_a_device_is_refused_not_read_without_end() -> None:
    with pytest.raises(BarsError, match="/dev/urandom: cannot be read: a device, not a file"):
        read_bars("/dev/urandom")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_name_too_long_is_a_bars_error(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(BarsError, match="cannot be read: .*File name too long"):
        read_bars(tmp_path / ("a" * 300 + suffix))


def test_a_parquet_fifo_is_refused_saying_why(tmp_path: Path) -> None:
    fifo = tmp_path / "bars.parquet"
    os.mkfifo(fifo)
    with pytest.raises(BarsError, match="not a regular file \\(Parquet is read by seeking"):
        read_bars(fifo)


def test_parquet_prices_stored_as_bytes_are_read_as_text(tmp_path: Path) -> None:
    days = pa.array([datetime(2024, 1, 1), datetime(2024, 1, 2)], pa.timestamp("s"))
    path = parquet(tmp_path, {"date": days, "close": pa.array([b"11", b"12.5"], pa.binary())})
    assert read_bars(path).close.tolist() == [11.0, 12.5]


def test_a_header_fault_is_named_by_the_line_the_header_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text('\ndate,open,high,low,"Close\nx"\n2024-01-01,10,12,9,11\n')
    with pytest.raises(BarsError) as raised:
        read_bars(path)
    assert (raised.value.row, raised.value.column) == (2, "close")


def test_blank_values_past_the_header_are_read_as_a_trailing_comma_is(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(CSV.replace("12\n", "12, \t\n"))
    assert read_bars(path).close.tolist() == [11.0, 12.0]
