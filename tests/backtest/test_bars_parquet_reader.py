"""Parquet bars are read without loading pandas, and a folder of Parquet files (a dataset, as
Spark writes one) still reads as one series."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from quantflow_async.backtest import read_bars

DAYS = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)]


def table(times: list[datetime], close: list[float]) -> pa.Table:
    return pa.table(
        {
            "date": pa.array(times, pa.timestamp("us", tz="UTC")),
            "open": close,
            "high": [value + 1 for value in close],
            "low": [value - 1 for value in close],
            "close": close,
            "volume": pa.array([100, 150][: len(close)], pa.int64()),
        }
    )


def test_reading_a_parquet_file_loads_no_pandas(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    pq.write_table(table(DAYS, [11.0, 12.0]), path)
    probe = (
        "import sys\nfrom quantflow_async.backtest import read_bars\n"
        f"bars = read_bars({str(path)!r})\n"
        "print(len(bars), 'pandas' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["2", "False"]


def test_int64_prices_and_volume_are_read_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    frame = table(DAYS, [11.0, 12.0]).set_column(4, "close", pa.array([11, 12], pa.int64()))
    pq.write_table(frame, path)
    bars = read_bars(path)
    assert bars.close.tolist() == [11.0, 12.0]
    assert bars.volume.tolist() == [100.0, 150.0]


def test_a_folder_of_parquet_files_reads_as_one_series(tmp_path: Path) -> None:
    folder = tmp_path / "bars.parquet"
    folder.mkdir()
    pq.write_table(table(DAYS, [11.0, 12.0]), folder / "part-0.parquet")
    bars = read_bars(folder)
    assert [bars.time_at(i) for i in range(len(bars))] == DAYS
    assert bars.close.tolist() == [11.0, 12.0]
