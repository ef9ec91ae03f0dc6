"""Reading bars from CSV and Parquet, the synthetic random walk, and one error per bad file."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantflow_async.backtest import BarsError, read_bars, synthetic_bars

HEADER = "date,open,high,low,close,volume\n"
GOOD_ROWS = "2024-01-01,10,12,9,11,100\n2024-01-02,11,13,10,12,150\n"


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_a_date_column_is_read_as_utc_times(tmp_path: Path) -> None:
    bars = read_bars(write(tmp_path, HEADER + GOOD_ROWS))
    assert len(bars) == 2
    assert bars.time_at(0) == datetime(2024, 1, 1, tzinfo=UTC)
    assert bars.close.tolist() == [11.0, 12.0]
    assert bars.volume.tolist() == [100.0, 150.0]


def test_column_names_match_in_any_letter_case(tmp_path: Path) -> None:
    bars = read_bars(
        write(tmp_path, "Timestamp,OPEN,High,low,Close\n" + "1704067200,1,2,0.5,1.5\n")
    )
    assert bars.time_at(0) == datetime(2024, 1, 1, tzinfo=UTC)
    assert bars.high.tolist() == [2.0]


def test_the_unnamed_first_column_pandas_writes_is_the_time(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"Open": [1.0, 2.0], "High": [2.0, 3.0], "Low": [0.5, 1.5], "Close": [1.5, 2.5]},
        index=pd.to_datetime(["2024-03-01 09:30", "2024-03-01 09:31"]),
    )
    path = tmp_path / "pandas.csv"
    frame.to_csv(path)
    bars = read_bars(path)
    assert bars.time_at(1) == datetime(2024, 3, 1, 9, 31, tzinfo=UTC)
    assert bars.open.tolist() == [1.0, 2.0]


def test_without_a_volume_column_volume_is_nan(tmp_path: Path) -> None:
    bars = read_bars(write(tmp_path, "date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n"))
    assert np.isnan(bars.volume).all()


def test_times_with_an_offset_are_converted_to_utc(tmp_path: Path) -> None:
    text = "datetime,open,high,low,close\n2024-01-01T10:00:00+02:00,1,2,0.5,1.5\n"
    assert read_bars(write(tmp_path, text)).time_at(0) == datetime(2024, 1, 1, 8, tzinfo=UTC)


def test_epoch_milliseconds_are_told_from_seconds_by_size(tmp_path: Path) -> None:
    text = "time,open,high,low,close\n1704067200000,1,2,0.5,1.5\n1704067260000,1,2,0.5,1.5\n"
    bars = read_bars(write(tmp_path, text))
    assert bars.time_at(1) == datetime(2024, 1, 1, 0, 1, tzinfo=UTC)


def test_parquet_written_by_pandas_reads_like_the_csv(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"Open": [10.0, 11.0], "High": [12.0, 13.0], "Low": [9.0, 10.0], "Close": [11.0, 12.0]},
        index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"], name="Date"),
    )
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    bars = read_bars(path)
    assert bars.time_at(1) == datetime(2024, 1, 2, tzinfo=UTC)
    assert bars.close.tolist() == [11.0, 12.0]


def test_parquet_without_pyarrow_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as if it were not installed
    with pytest.raises(BarsError, match=r"pip install 'quantflow-async\[analysis\]'"):
        read_bars(tmp_path / "bars.parquet")


def test_synthetic_bars_are_the_same_for_the_same_seed() -> None:
    first, again, other = (
        synthetic_bars(500, seed=7),
        synthetic_bars(500, seed=7),
        synthetic_bars(500, seed=8),
    )
    assert np.array_equal(first.close, again.close)
    assert np.array_equal(first.times, again.times)
    assert not np.array_equal(first.close, other.close)


def test_synthetic_bars_have_consistent_ohlc() -> None:
    bars = synthetic_bars(20_000, seed=3, volatility=0.05)
    assert (bars.high >= np.maximum(bars.open, bars.close)).all()
    assert (bars.low <= np.minimum(bars.open, bars.close)).all()
    assert (bars.low > 0).all()


def test_synthetic_bars_follow_the_interval_from_the_start() -> None:
    start = datetime(2023, 6, 1, 12, tzinfo=UTC)
    bars = synthetic_bars(3, start=start, interval=timedelta(minutes=5))
    assert [bars.time_at(i) for i in range(3)] == [
        start,
        start + timedelta(minutes=5),
        start + timedelta(minutes=10),
    ]


def test_synthetic_drift_shows_in_the_long_run() -> None:
    rising = synthetic_bars(5_000, seed=1, drift=0.001, volatility=0.01)
    falling = synthetic_bars(5_000, seed=1, drift=-0.001, volatility=0.01)
    assert rising.close[-1] > 100 > falling.close[-1]


# -- one error per bad file, naming the file, the line and the column ---------------------------


def assert_bars_error(path: Path, row: int | None, column: str | None, reason: str) -> None:
    with pytest.raises(BarsError) as caught:
        read_bars(path)
    error = caught.value
    assert (error.path, error.row, error.column) == (str(path), row, column)
    message = str(error)
    assert str(path) in message
    assert reason in message
    if row is not None:
        assert f"row {row}" in message
    if column is not None:
        assert repr(column) in message


def test_missing_column_is_named_on_the_header_line(tmp_path: Path) -> None:
    path = write(tmp_path, "date,open,high,low,volume\n2024-01-01,1,2,0.5,10\n")
    assert_bars_error(path, 1, "close", "column missing")


def test_value_that_is_not_a_number_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "Date,Open,High,Low,Close\n2024-01-01,1,2,0.5,1.5\n2024-01-02,1,two,0.5,1.5\n"
    )
    assert_bars_error(path, 3, "High", "not a number: 'two'")


def test_empty_value_is_not_a_number(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-01,10,12,9,,100\n")
    assert_bars_error(path, 2, "close", "not a number: ''")


def test_time_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + GOOD_ROWS + "yesterday,10,12,9,11,100\n")
    assert_bars_error(path, 4, "date", "not a time: 'yesterday'")


def test_times_out_of_order_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + GOOD_ROWS + "2023-12-31,10,12,9,11,100\n")
    assert_bars_error(path, 4, "date", "time out of order")


def test_repeated_time_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + GOOD_ROWS + "2024-01-02,10,12,9,11,100\n")
    assert_bars_error(path, 4, "date", "time repeated")


def test_file_with_a_header_and_no_rows_is_refused(tmp_path: Path) -> None:
    assert_bars_error(write(tmp_path, HEADER), 2, None, "no rows")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    assert_bars_error(write(tmp_path, ""), 1, None, "no header")


def test_high_below_low_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-01,10,8,9,9.5,100\n")
    assert_bars_error(path, 2, "high", "high 8.0 is below low 9.0")


def test_row_with_too_few_values_names_the_first_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + GOOD_ROWS + "2024-01-03,10,12\n")
    assert_bars_error(path, 4, "low", "value missing")


def test_price_that_is_not_positive_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-01,0,12,9,11,100\n")
    assert_bars_error(path, 2, "open", "must be a finite number > 0")


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-01,10,12,9,11,100\n\n2024-01-02,10,12,9,x,100\n")
    assert_bars_error(path, 4, "close", "not a number: 'x'")


def test_file_without_a_time_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "when,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n")
    assert_bars_error(path, 1, "date", "no time column")


def test_parquet_bad_value_names_the_row(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "open": [1.0, 1.0],
            "high": [2.0, 0.1],
            "low": [0.5, 0.5],
            "close": [1.5, 0.4],
        }
    )
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path, index=False)
    assert_bars_error(path, 2, "high", "high 0.1 is below low 0.5")


def test_missing_file_is_a_bars_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    assert_bars_error(path, None, None, "cannot be read")


def test_parquet_missing_column_is_named_without_a_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"date": pd.to_datetime(["2024-01-01"]), "open": [1.0], "high": [2.0]})
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path, index=False)
    assert_bars_error(path, None, "low", "column missing")


def test_parquet_nanosecond_times_are_kept_to_the_microsecond(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5]},
        index=pd.DatetimeIndex([pd.Timestamp("2024-01-01 00:00:00.000001999")], name="time"),
    )
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    assert read_bars(path).time_at(0) == datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
