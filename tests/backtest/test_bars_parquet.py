"""Parquet bars as pandas and pyarrow write them: the time in the index (named or not) or in a
column of dates or timestamps of any unit and time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quantflow_async.backtest import BarsError, read_bars

PRICES = {"open": [10.0, 11.0], "high": [12.0, 13.0], "low": [9.0, 10.0], "close": [11.0, 12.0]}
DAYS = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)]


def written(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)  # as a user does: the index kept, under pandas' own rules
    return path


def table_file(tmp_path: Path, times: pa.Array) -> Path:
    path = tmp_path / "bars.parquet"
    pq.write_table(pa.table({"date": times, **PRICES}), path)
    return path


def times_of(path: Path) -> list[datetime]:
    bars = read_bars(path)
    assert bars.close.tolist() == [11.0, 12.0]
    return [bars.time_at(i) for i in range(len(bars))]


def test_an_unnamed_datetime_index_is_the_time(tmp_path: Path) -> None:
    frame = pd.DataFrame(PRICES, index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"]))
    path = written(tmp_path, frame)
    assert pq.read_schema(path).names[-1] == "__index_level_0__"  # pandas puts it last
    assert times_of(path) == DAYS


def test_an_index_of_any_name_is_the_time(tmp_path: Path) -> None:
    index = pd.DatetimeIndex(["2024-01-01", "2024-01-02"], name="open_time")
    assert times_of(written(tmp_path, pd.DataFrame(PRICES, index=index))) == DAYS


def test_an_index_in_another_time_zone_is_read_as_the_same_instants(tmp_path: Path) -> None:
    index = pd.DatetimeIndex(["2023-12-31 19:00", "2024-01-01 19:00"], tz="America/New_York")
    assert times_of(written(tmp_path, pd.DataFrame(PRICES, index=index))) == DAYS


def test_a_time_column_wins_over_a_default_index(tmp_path: Path) -> None:
    frame = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-02"]), **PRICES})
    assert times_of(written(tmp_path, frame)) == DAYS


def test_a_date32_column_is_read_as_midnight_utc(tmp_path: Path) -> None:
    times = pa.array([date(2024, 1, 1), date(2024, 1, 2)], pa.date32())
    assert times_of(table_file(tmp_path, times)) == DAYS


def test_a_date64_column_is_read_as_midnight_utc(tmp_path: Path) -> None:
    times = pa.array([date(2024, 1, 1), date(2024, 1, 2)], pa.date64())
    assert times_of(table_file(tmp_path, times)) == DAYS


def test_integers_of_eight_digits_are_dates_as_in_a_csv(tmp_path: Path) -> None:
    times = pa.array([20240101, 20240102], pa.int64())
    assert times_of(table_file(tmp_path, times)) == DAYS


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC", "Asia/Tokyo"])
def test_timestamps_of_any_unit_and_zone_are_read(
    tmp_path: Path, unit: str, zone: str | None
) -> None:
    naive = [moment.replace(tzinfo=None) for moment in DAYS]
    times = pa.array(DAYS if zone else naive, pa.timestamp(unit, tz=zone))
    assert times_of(table_file(tmp_path, times)) == DAYS


def test_a_missing_date_names_its_row(tmp_path: Path) -> None:
    times = pa.array([date(2024, 1, 1), None], pa.date32())
    with pytest.raises(BarsError) as raised:
        read_bars(table_file(tmp_path, times))
    assert (raised.value.row, raised.value.column) == (2, "date")
    assert "time missing" in str(raised.value)


def test_two_unnamed_index_levels_are_no_time_column(tmp_path: Path) -> None:
    index = pd.MultiIndex.from_arrays([["A", "A"], pd.to_datetime(["2024-01-01", "2024-01-02"])])
    with pytest.raises(BarsError, match="no time column"):
        read_bars(written(tmp_path, pd.DataFrame(PRICES, index=index)))


def test_an_index_column_without_pandas_metadata_is_the_time(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    times = pa.array([moment.replace(tzinfo=None) for moment in DAYS], pa.timestamp("ns"))
    pq.write_table(pa.table({**PRICES, "__index_level_0__": times}), path)
    assert pq.read_schema(path).pandas_metadata is None
    assert times_of(path) == DAYS
