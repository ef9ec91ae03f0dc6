"""Trades to CSV and Parquet files, streamed: memory stays at one chunk however many match.

A file is written under a temporary name beside the target and renamed at the end, so a
failed or interrupted export leaves no file behind (and an older file of that name unchanged).
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import AsyncIterable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, Literal

from quantflow_async.analysis._extras import import_extra
from quantflow_async.analysis.frames import (
    MONEY_FIELDS,
    TIME_FIELDS,
    TRADE_FIELDS,
    arrow_batch,
    arrow_schema,
    chunked,
    metadata_text,
    trade_columns,
)
from quantflow_async.records import Trade
from quantflow_async.validation import decimal_text

ExportFormat = Literal["csv", "parquet"]
FORMATS: Final[tuple[ExportFormat, ...]] = ("csv", "parquet")
Progress = Callable[[int], None]
"""Called with the number of trades written so far, after each chunk."""

CSV_CHUNK: Final = 5000
PARQUET_ROW_GROUP: Final = 50_000


def format_of(path: Path) -> ExportFormat | None:
    """The format a file name asks for (`.csv`, `.parquet` or `.pq`), or None."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    return None


async def export_trades(
    trades: AsyncIterable[Trade],
    path: str | os.PathLike[str],
    format: ExportFormat,
    *,
    progress: Progress | None = None,
) -> int:
    """Write `trades` (e.g. `db.trades.stream(backtest_id=3)`) to `path`; return how many.

    Columns are `TRADE_FIELDS` in both formats. In CSV, money is plain decimal text as
    stored, times are ISO 8601 in UTC with microseconds, metadata is JSON text and a missing
    value is an empty field. Parquet (needs pyarrow, from the `analysis` extra) holds money as
    decimal128(38, 18) and times as timestamp[us, UTC].
    """
    target = Path(path)
    if format == "csv":
        return await _write_csv(trades, target, progress)
    if format == "parquet":
        return await _write_parquet(trades, target, progress)
    raise ValueError(f"format: must be one of {', '.join(FORMATS)}, got {format!r}")


def _csv_text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name in MONEY_FIELDS:
        return decimal_text(value)
    if name in TIME_FIELDS:
        moment: datetime = value
        return moment.isoformat(timespec="microseconds")
    if name == "metadata":
        return metadata_text(value) or ""
    return str(value)


async def _write_csv(trades: AsyncIterable[Trade], target: Path, progress: Progress | None) -> int:
    written = 0
    with _replacing(target) as temporary, _text_file(temporary) as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(TRADE_FIELDS)
        async for batch in chunked(trades, CSV_CHUNK):
            writer.writerows(_csv_rows(trade_columns(batch), len(batch)))
            written += len(batch)
            if progress is not None:
                progress(written)
    return written


def _csv_rows(columns: dict[str, list[Any]], count: int) -> Iterator[list[str]]:
    texts = [[_csv_text(name, value) for value in columns[name]] for name in TRADE_FIELDS]
    for index in range(count):
        yield [column[index] for column in texts]


async def _write_parquet(
    trades: AsyncIterable[Trade], target: Path, progress: Progress | None
) -> int:
    parquet = import_extra("pyarrow.parquet", "exporting to Parquet")
    schema = arrow_schema()
    written = 0
    with _replacing(target) as temporary:
        writer = parquet.ParquetWriter(temporary, schema)
        try:
            async for batch in chunked(trades, PARQUET_ROW_GROUP):
                writer.write_table(arrow_batch(trade_columns(batch), schema))
                written += len(batch)
                if progress is not None:
                    progress(written)
        finally:
            writer.close()
    return written


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, renamed to it if the block succeeds, else removed."""
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a directory; name a file")
    try:
        handle, name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise type(exc)(
            f"cannot write {target}: {reason}; choose a folder that exists and you can write to"
        ) from exc
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _text_file(path: Path) -> IO[str]:
    return path.open("w", encoding="utf-8", newline="")
