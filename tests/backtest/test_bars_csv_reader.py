"""CSV bars are read column by column by pyarrow, and agree with the row-by-row reader: the
same bars for every file both read, the same error (file, line, column, reason) for every file
one refuses, and the row reader still reads what pyarrow cannot."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantflow_async.backtest import Bars, BarsError, read_bars, synthetic_bars
from quantflow_async.backtest.bars import epoch_numbers_to_micros, parse_times
from quantflow_async.backtest.bars_csv import _InMemory, read_csv_columns, read_csv_rows

HEADER = "date,open,high,low,close,volume\n"
ROW_1 = "2024-01-01,10,12,9,11,100\n"
ROW_2 = "2024-01-02,11,13,10,12,150\n"


def write(tmp_path: Path, text: str | bytes, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def same_bars(first: Bars, second: Bars) -> bool:
    names = ("times", "open", "high", "low", "close", "volume")
    return all(
        np.array_equal(getattr(first, name), getattr(second, name), equal_nan=True)
        for name in names
    )


def fault(path: Path) -> tuple[str, int | None, str | None, str]:
    with pytest.raises(BarsError) as caught:
        read_bars(path)
    error = caught.value
    return error.path, error.row, error.column, error.reason


def row_reader_fault(path: Path) -> tuple[str, int | None, str | None, str]:
    with pytest.raises(BarsError) as caught:
        read_csv_rows(path)
    error = caught.value
    return error.path, error.row, error.column, error.reason


def read_by_columns(path: Path) -> Bars:
    """The bars of `path`, checked to come from pyarrow's reader and to agree with the row
    reader's."""
    bars = read_csv_columns(path)
    assert bars is not None, "pyarrow's reader declined a file it should read"
    assert same_bars(bars, read_csv_rows(path))
    return bars


# -- the files a user has are read by pyarrow, to the same bars --------------------------------


def test_the_files_quantflow_bars_synth_writes_are_read_by_columns(tmp_path: Path) -> None:
    lines = ["time,open,high,low,close,volume"]
    lines += [
        f"2020-01-01T00:{minute:02d}:00Z,100.10,100.43,99.92,100.16,578156.00"
        for minute in range(60)
    ]
    bars = read_by_columns(write(tmp_path, "\n".join(lines) + "\n"))
    assert bars.time_at(59) == datetime(2020, 1, 1, 0, 59, tzinfo=UTC)


def test_a_frame_pandas_wrote_is_read_by_columns(tmp_path: Path) -> None:
    import pandas as pd

    bars = synthetic_bars(500, seed=4)
    frame = pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close},
        index=pd.to_datetime(bars.times, unit="us"),
    )
    path = tmp_path / "pandas.csv"
    frame.to_csv(path)
    read = read_by_columns(path)
    assert np.array_equal(read.times, bars.times)
    assert np.array_equal(read.close, bars.close)  # pandas writes the shortest repr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01 09:30", datetime(2024, 1, 1, 9, 30, tzinfo=UTC)),
        ("2024-01-01T09:30:00+02:00", datetime(2024, 1, 1, 7, 30, tzinfo=UTC)),
        ("2024-01-01T09:30:00-05:00", datetime(2024, 1, 1, 14, 30, tzinfo=UTC)),
        ("2024-01-01T09:30:00+0200", datetime(2024, 1, 1, 7, 30, tzinfo=UTC)),
        ("2024-01-01T09:30:00Z", datetime(2024, 1, 1, 9, 30, tzinfo=UTC)),
        ("2024-01-01T09:30:00.25", datetime(2024, 1, 1, 9, 30, 0, 250_000, tzinfo=UTC)),
        ("2024-01-01T09:30:00.1234567", datetime(2024, 1, 1, 9, 30, 0, 123_456, tzinfo=UTC)),
        ("1969-12-31T23:59:59.1234567", datetime(1969, 12, 31, 23, 59, 59, 123_456, tzinfo=UTC)),
        ("1704067200", datetime(2024, 1, 1, tzinfo=UTC)),
        ("1704067200.5", datetime(2024, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)),
        ("1704067200000", datetime(2024, 1, 1, tzinfo=UTC)),
        ("1704067200000000", datetime(2024, 1, 1, tzinfo=UTC)),
        ("1704067200000000999", datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        ("20240102", datetime(2024, 1, 2, tzinfo=UTC)),
        ("20240229", datetime(2024, 2, 29, tzinfo=UTC)),
        ("9999999", datetime(1970, 4, 26, 17, 46, 39, tzinfo=UTC)),
    ],
)
def test_each_time_form_is_read_by_columns_as_the_row_reader_reads_it(
    tmp_path: Path, text: str, expected: datetime
) -> None:
    bars = read_by_columns(write(tmp_path, f"time,open,high,low,close\n{text},1,2,0.5,1.5\n"))
    assert bars.time_at(0) == expected


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    bars = read_by_columns(write(tmp_path, b"\xef\xbb\xbf" + (HEADER + ROW_1).encode()))
    assert bars.time_at(0) == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("ending", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_windows_and_old_mac_line_endings_are_read(tmp_path: Path, ending: str) -> None:
    text = (HEADER + ROW_1 + ROW_2).replace("\n", ending)
    assert read_by_columns(write(tmp_path, text)).close.tolist() == [11.0, 12.0]


def test_quoted_values_and_spaces_around_numbers_are_read(tmp_path: Path) -> None:
    text = HEADER + '"2024-01-01"," 10","12 ",9,"11",100\n'
    assert read_by_columns(write(tmp_path, text)).open.tolist() == [10.0]


def test_columns_beyond_the_bars_are_ignored(tmp_path: Path) -> None:
    text = "symbol,date,open,high,low,close,volume,note\n" + "BTC,2024-01-01,10,12,9,11,100,x\n"
    assert read_by_columns(write(tmp_path, text)).high.tolist() == [12.0]


def test_huge_and_tiny_prices_are_kept_exactly(tmp_path: Path) -> None:
    text = HEADER + "2024-01-01,1e300,1.7976931348623157e308,1e-300,5e-324,0\n"
    bars = read_by_columns(write(tmp_path, text))
    assert bars.high.tolist() == [1.7976931348623157e308]
    assert bars.close.tolist() == [5e-324]
    assert bars.volume.tolist() == [0.0]


def test_a_volume_of_zero_is_read(tmp_path: Path) -> None:
    assert read_by_columns(write(tmp_path, HEADER + "2024-01-01,10,12,9,11,0\n")).volume[0] == 0


# -- what pyarrow does not read, the row reader still reads ------------------------------------


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("2024-01-01T09:30:00 +02:00", datetime(2024, 1, 1, 7, 30, tzinfo=UTC)),
        ("20240101T093000", datetime(2024, 1, 1, 9, 30, tzinfo=UTC)),
        ("2024-W01-1", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01t09:30", datetime(2024, 1, 1, 9, 30, tzinfo=UTC)),
        (" 2024-01-01T09:30:00 ", datetime(2024, 1, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_iso_forms_pyarrow_does_not_know_are_read_row_by_row(
    tmp_path: Path, row: str, expected: datetime
) -> None:
    path = write(tmp_path, f"time,open,high,low,close\n{row},1,2,0.5,1.5\n")
    assert read_csv_columns(path) is None
    assert read_bars(path).time_at(0) == expected


def test_a_time_column_mixing_epochs_and_iso_text_is_read_row_by_row(tmp_path: Path) -> None:
    path = write(tmp_path, "time,open,high,low,close\n1704067200,1,2,0.5,1.5\n2024-01-02,1,2,1,1\n")
    bars = read_bars(path)
    assert [bars.time_at(i) for i in range(2)] == [
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 2, tzinfo=UTC),
    ]


def test_numbers_with_underscores_are_read_as_python_reads_them(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-01,10,12,9,11,1_000\n")
    assert read_bars(path).volume.tolist() == [1000.0]


def test_a_row_with_empty_values_past_the_header_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW_1 + "2024-01-02,11,13,10,12,150,,\n")
    assert read_bars(path).close.tolist() == [11.0, 12.0]


@pytest.mark.parametrize("before", ["", "\n", " \n\n"], ids=["first", "blank", "spaces"])
def test_a_comma_ending_every_row_is_read_by_columns(tmp_path: Path, before: str) -> None:
    rows = "".join(row.replace("\n", ",\n") for row in (ROW_1, ROW_2))
    bars = read_by_columns(write(tmp_path, before + HEADER + rows))
    assert bars.close.tolist() == [11.0, 12.0]
    assert bars.volume.tolist() == [100.0, 150.0]


def test_a_comma_ending_rows_piped_in_is_read(tmp_path: Path) -> None:
    rows = "".join(row.replace("\n", ",\n") for row in (ROW_1, ROW_2))
    source = _InMemory("<pipe>", (HEADER + rows).encode())
    by_columns = read_csv_columns(source)
    assert by_columns is not None
    assert by_columns.close.tolist() == [11.0, 12.0]


@pytest.mark.parametrize(
    "ends", [(",", ""), ("", ","), (",", ",1"), (",,", ",,")], ids=["first", "last", "x", "two"]
)
def test_rows_ending_otherwise_are_left_to_the_row_reader(
    tmp_path: Path, ends: tuple[str, str]
) -> None:
    rows = ROW_1.replace("\n", ends[0] + "\n") + ROW_2.replace("\n", ends[1] + "\n")
    path = write(tmp_path, HEADER + rows)
    assert read_csv_columns(path) is None


def test_a_row_with_more_values_than_the_header_is_refused(tmp_path: Path) -> None:
    """An unquoted thousands separator: read as it stands, every price after it would shift."""
    path = write(tmp_path, HEADER + ROW_1 + "2024-01-02,1,240.0,1,260.0,1,230.0,150\n")
    with pytest.raises(BarsError, match="row 3: 8 values where the header names 6 columns"):
        read_bars(path)


# -- every fault is the row reader's: the file, the line, the column, the reason ----------------


BAD_FILES = {
    "empty file": "",
    "header only": HEADER,
    "header and blank lines": HEADER + "\n\n",
    "no time column": "when,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n",
    "missing column": "date,open,high,low\n2024-01-01,1,2,0.5\n",
    "NaN price": HEADER + "2024-01-01,NaN,12,9,11,100\n",
    "nan volume": HEADER + "2024-01-01,10,12,9,11,nan\n",
    "infinite price": HEADER + "2024-01-01,10,inf,9,11,100\n",
    "price past float": HEADER + "2024-01-01,10,1e400,9,11,100\n",
    "negative price": HEADER + ROW_1 + "2024-01-02,11,13,-10,12,150\n",
    "zero price": HEADER + "2024-01-01,10,12,9,0,100\n",
    "negative volume": HEADER + "2024-01-01,10,12,9,11,-1\n",
    "empty price": HEADER + "2024-01-01,10,12,,11,100\n",
    "text price": HEADER + "2024-01-01,10,12,nine,11,100\n",
    "NA price": HEADER + "2024-01-01,10,12,NA,11,100\n",
    "high below low": HEADER + "2024-01-01,10,8,9,9.5,100\n",
    "times out of order": HEADER + ROW_2 + ROW_1,
    "time repeated": HEADER + ROW_1 + ROW_1,
    "epochs out of order": (
        "time,open,high,low,close\n1704067260,1,2,0.5,1.5\n1704067200,1,2,0.5,1.5\n"
    ),
    "negative epoch": "time,open,high,low,close\n-5,1,2,0.5,1.5\n",
    "epoch past int64": "time,open,high,low,close\n1e30,1,2,0.5,1.5\n",
    "nan epoch": "time,open,high,low,close\nnan,1,2,0.5,1.5\n",
    "time of day only": "time,open,high,low,close\n09:30:00,1,2,0.5,1.5\n",
    "impossible date": HEADER + "2023-02-29,10,12,9,11,100\n",
    "eight digits that are not a date": "time,open,high,low,close\n20230229,1,2,0.5,1.5\n",
    "leap second": "time,open,high,low,close\n2024-01-01T23:59:60,1,2,0.5,1.5\n",
    "empty time": HEADER + ",10,12,9,11,100\n",
    "short row": HEADER + ROW_1 + "2024-01-02,11,13\n",
    "blank lines before a fault": HEADER + ROW_1 + "\n\n" + "2024-01-02,11,13,10,x,150\n",
    "crlf before a fault": (HEADER + ROW_1 + "2024-01-02,11,13,10,12,-1\n").replace("\n", "\r\n"),
    "quoted newline before a fault": HEADER + '2024-01-01,10,12,9,11,"1\n00"\n' + ROW_1,
    "bytes that are not utf-8": HEADER.encode() + b"2024-01-01,10,12,9,11,\xff\n",
    "utf-8 fault in another column": b"date,open,high,low,close,note\n2024-01-01,1,2,0.5,1,\xff\n",
    "time past the year 9999": HEADER + "9999-12-31T23:00:00-01:00,10,12,9,11,100\n",
    "more values than the header": HEADER + "2024-01-01,1,200.5,12,9,11,100\n",
    "a price column twice": "date,open,high,low,close,Close\n2024-01-01,10,12,9,11,11\n",
    "an unclosed quote": HEADER + ROW_1 + '2024-01-02,11,13,10,"12,150\n' + ROW_2 * 3,
}


@pytest.mark.parametrize("content", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_a_bad_file_is_refused_as_the_row_reader_refuses_it(
    tmp_path: Path, content: str | bytes
) -> None:
    path = write(tmp_path, content)
    found = fault(path)
    assert found == row_reader_fault(path)
    assert found[0] == str(path)
    assert read_csv_columns(path) is None


def test_eight_digits_are_a_date_as_pandas_reads_them_not_a_second_of_1970(
    tmp_path: Path,
) -> None:
    text = "date,open,high,low,close\n20240102,1,2,0.5,1.5\n20240103,1,2,0.5,1.5\n"
    bars = read_by_columns(write(tmp_path, text))
    assert [bars.time_at(i) for i in range(2)] == [
        datetime(2024, 1, 2, tzinfo=UTC),
        datetime(2024, 1, 3, tzinfo=UTC),
    ]


def test_eight_digits_that_are_not_a_date_say_how_they_were_read(tmp_path: Path) -> None:
    text = "date,open,high,low,close\n20240131,1,2,0.5,1.5\n20240132,1,2,0.5,1.5\n"
    assert fault(write(tmp_path, text))[1:] == (
        3,
        "date",
        "not a time: '20240132' (eight digits are read as a date, YYYYMMDD)",
    )


def test_a_value_of_a_type_no_rule_reads_is_not_told_it_was_read_as_a_date() -> None:
    with pytest.raises(BarsError) as caught:
        parse_times("<parquet>", "date", [Decimal(20240101)], lambda index: index + 1)
    assert caught.value.reason == "not a time: Decimal('20240101')"


def test_faults_name_the_files_line_counting_blank_and_crlf_lines(tmp_path: Path) -> None:
    text = (HEADER + ROW_1 + "\n" + "2024-01-02,11,13,10,12,150\n" + ROW_2).replace("\n", "\r\n")
    assert fault(write(tmp_path, text))[1:] == (5, "date", "time repeated")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    found = fault(path)
    assert found[:3] == (str(path), None, None)
    assert found[3].startswith("cannot be read")


def test_the_file_is_read_at_the_moment_of_reading(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW_1)
    read_bars(path)
    path.write_text(HEADER + ROW_2)
    assert read_bars(path).close.tolist() == [12.0]


# -- any file: the two readers agree ------------------------------------------------------------


TIME_FORMS = (
    lambda s: str(s),
    lambda s: f"{s}.5",
    lambda s: str(s * 1000),
    lambda s: str(s * 1_000_000),
    lambda s: str(s * 1_000_000_000 + 999),
    lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M:%S"),
    lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
    lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789"),
    lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S-03:30"),
    lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d"),
    lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y%m%dT%H%M%S"),
)
PRICE_FORMS = (repr, lambda p: f"{p:.2f}", lambda p: f"{p:e}", lambda p: str(round(p)))
ODD_TEXTS = ("", "nan", "inf", "1e400", " 5 ", "1_000", "0", "-0", "-1", ".5", "5.", "x", "NA")


@st.composite
def csv_files(draw: st.DrawFn) -> str:
    """Files of up to 8 bars, one time form per file (or a mix), prices in one of several
    spellings, now and then an odd value, a blank line, Windows line endings."""
    count = draw(st.integers(min_value=0, max_value=8))  # 0: a header only
    starts = sorted(draw(st.lists(st.integers(0, 2_000_000_000), min_size=count, unique=True)))
    forms = draw(st.lists(st.sampled_from(TIME_FORMS), min_size=1, max_size=2))
    tail = draw(st.sampled_from(["", "", ",", ", "]))  # a comma ending every row, or not
    rows = []
    for start in starts:
        price = draw(st.floats(min_value=1.0, max_value=1e9))
        spell = draw(st.sampled_from(PRICE_FORMS))
        values = [spell(price)] * 4 + [spell(draw(st.floats(min_value=0, max_value=1e12)))]
        if draw(st.integers(0, 19)) == 0:
            values[draw(st.integers(0, 4))] = draw(st.sampled_from(ODD_TEXTS))
        end = draw(st.sampled_from(["", ",", ",x"])) if draw(st.integers(0, 19)) == 0 else tail
        rows.append(",".join([draw(st.sampled_from(forms))(start), *values]) + end)
    before = draw(st.sampled_from(["", "\n", " \n"]))
    blank = draw(st.sampled_from(["", "\n"]))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    name = draw(st.sampled_from(["date", "Time", "timestamp", ""]))
    text = before + f"{name},open,high,low,close,volume\n" + blank + "\n".join(rows) + "\n"
    return text.replace("\n", ending)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=csv_files())
def test_the_column_reader_agrees_with_the_row_reader_on_any_file(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        path.write_text(text, newline="")
        by_columns = read_csv_columns(path)
        try:
            by_rows = read_csv_rows(path)
        except BarsError:
            assert by_columns is None
            return
        assert by_columns is None or same_bars(by_columns, by_rows)


# -- what reading loads --------------------------------------------------------------------------


def modules_loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stdout.split())


def test_the_bars_module_loads_pyarrow_only_when_a_file_is_read() -> None:
    assert "pyarrow" not in modules_loaded_after("import quantflow_async.backtest.bars")


def test_reading_a_csv_loads_pyarrow_and_not_pandas(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW_1 + ROW_2)
    loaded = modules_loaded_after(
        f"from quantflow_async.backtest import read_bars\nread_bars({str(path)!r})"
    )
    assert "pyarrow" in loaded
    assert "pandas" not in loaded


EPOCH_EDGES = [
    0.0, 0.5, 1.5, 2.5, 99_999_999_999.0, 99_999_999_999.5, 1e11, 1e11 + 0.5, 99_999_999_999_999.0,
    1e14, 1e14 + 0.5, 99_999_999_999_999_999.0, 1e17, 1e17 + 500.0, 1e17 + 1500.0,
    9.2e21, 9.223372036854775e21, 1704067200.123456789,
    9_999_999.0, 10_000_101.0, 20_240_102.0, 20_240_102.5, 99_991_231.0, 100_000_000.0,
]  # fmt: skip


@pytest.mark.parametrize("number", EPOCH_EDGES)
def test_epochs_at_the_unit_limits_are_the_row_readers_microseconds(number: float) -> None:
    by_rows = parse_times("<edges>", "time", [repr(number)], lambda index: index)
    by_columns = epoch_numbers_to_micros(np.array([number]))
    assert by_columns is not None
    assert by_columns.tolist() == by_rows.tolist()


@pytest.mark.parametrize(
    "number", [-1.0, float("nan"), float("inf"), 9.3e21, 1e300, 1e7, 20_241_301.0, 20_230_229.0]
)
def test_epochs_the_row_reader_refuses_are_refused_at_once(number: float) -> None:
    assert epoch_numbers_to_micros(np.array([1704067200.0, number])) is None
    with pytest.raises(BarsError):
        parse_times("<edges>", "time", [repr(number)], lambda index: index)
