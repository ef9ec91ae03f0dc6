"""Trades to CSV and Parquet files, streamed: memory stays at one chunk however many match.

A file is written whole or not at all, by the rules of `_files`: a failed or interrupted export
leaves no file behind (and an older file of that name unchanged, its mode kept by a new one).
"""

from __future__ import annotations

import csv
import os
from collections.abc import AsyncIterable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, Literal

from quantflow_async.analysis._extras import import_extra
from quantflow_async.analysis._files import writing
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

CHUNK: Final = 5000
PARQUET_ROW_GROUP: Final = 100_000  # a multiple of CHUNK


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


def _money_texts(values: list[Any]) -> list[str]:
    return ["" if value is None else decimal_text(value) for value in values]


def _time_texts(values: list[Any]) -> list[str]:
    # created_at and updated_at repeat across a writer's batch: each is formatted once.
    texts: dict[datetime, str] = {}
    return [
        texts.get(moment) or texts.setdefault(moment, moment.isoformat(timespec="microseconds"))
        for moment in values
    ]


def _plain_texts(values: list[Any]) -> list[str]:
    return ["" if value is None else str(value) for value in values]


def _metadata_texts(values: list[Any]) -> list[str]:
    return [metadata_text(value) or "" for value in values]


_CSV_TEXTS: Final[dict[str, Callable[[list[Any]], list[str]]]] = {
    **dict.fromkeys(MONEY_FIELDS, _money_texts),
    **dict.fromkeys(TIME_FIELDS, _time_texts),
    "metadata": _metadata_texts,
}


def _csv_rows(trades: list[Trade]) -> Iterator[tuple[str, ...]]:
    """The trades as CSV fields: money as plain decimal text (as stored), times ISO 8601 in
    UTC with microseconds, metadata as JSON, a missing value as an empty field."""
    columns = trade_columns(trades)
    texts = [_CSV_TEXTS.get(name, _plain_texts)(columns[name]) for name in TRADE_FIELDS]
    return zip(*texts, strict=True)


async def _write_csv(trades: AsyncIterable[Trade], target: Path, progress: Progress | None) -> int:
    written = 0
    with writing(target) as temporary, _text_file(temporary) as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(TRADE_FIELDS)
        async for batch in chunked(trades, CHUNK):
            writer.writerows(_csv_rows(batch))
            written += len(batch)
            if progress is not None:
                progress(written)
    return written


async def _write_parquet(
    trades: AsyncIterable[Trade], target: Path, progress: Progress | None
) -> int:
    pa = import_extra("pyarrow", "exporting to Parquet")
    parquet = import_extra("pyarrow.parquet", "exporting to Parquet")
    schema = arrow_schema()
    written = 0
    # Each chunk becomes Arrow columns at once (a few dozen bytes a trade instead of a Python
    # record), and a row group is written every PARQUET_ROW_GROUP trades.
    pending: list[Any] = []
    with writing(target) as temporary:
        writer = parquet.ParquetWriter(temporary, schema)
        try:
            async for batch in chunked(trades, CHUNK):
                pending.append(arrow_batch(trade_columns(batch), schema))
                written += len(batch)
                if written % PARQUET_ROW_GROUP == 0:
                    writer.write_table(pa.concat_tables(pending))
                    pending.clear()
                if progress is not None:
                    progress(written)
            if pending:
                writer.write_table(pa.concat_tables(pending))
        finally:
            writer.close()
    return written


def _text_file(path: Path) -> IO[str]:
    return path.open("w", encoding="utf-8", newline="")
