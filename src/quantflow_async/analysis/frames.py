"""Trades as columns: a pandas DataFrame with exact Decimals, and an Arrow table for Parquet.

The DataFrame keeps money as the stored `Decimal` objects (object columns) and never as floats;
the Arrow table holds it as decimal128(38, 18), which Parquet stores as exact decimals.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import fields
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final

from quantflow_async.analysis._extras import import_extra
from quantflow_async.errors import InvalidValue
from quantflow_async.records import Trade
from quantflow_async.validation import epoch_micros

TRADE_FIELDS: Final = tuple(field.name for field in fields(Trade))
"""The columns of every DataFrame, Arrow table, CSV and Parquet file of trades, in order."""

MONEY_FIELDS: Final = ("quantity", "price", "fee", "pnl")
TIME_FIELDS: Final = ("executed_at", "created_at", "updated_at")
ID_FIELDS: Final = ("id", "strategy_id", "backtest_id")
ARROW_PRECISION: Final = 38
ARROW_SCALE: Final = 18
# decimal128(38, 18) leaves 20 digits before the point; the store allows up to 38.
_ARROW_LIMIT: Final = Decimal(10) ** (ARROW_PRECISION - ARROW_SCALE)
_row_of = attrgetter(*TRADE_FIELDS)

Columns = dict[str, list[Any]]


def trade_columns(trades: Iterable[Trade]) -> Columns:
    """The trades' values, one list per field of `TRADE_FIELDS`."""
    rows = [_row_of(trade) for trade in trades]
    if not rows:
        return {name: [] for name in TRADE_FIELDS}
    by_field = zip(*rows, strict=True)
    return {name: list(values) for name, values in zip(TRADE_FIELDS, by_field, strict=True)}


def metadata_text(metadata: Any) -> str | None:
    """A trade's metadata as compact JSON text (how CSV and Parquet hold it), or None."""
    return None if metadata is None else json.dumps(metadata, separators=(",", ":"))


# -- pandas -----------------------------------------------------------------------------------


def trades_to_dataframe(trades: Iterable[Trade]) -> Any:
    """A pandas DataFrame of `trades`, one row per trade, columns in `TRADE_FIELDS` order.

    quantity, price, fee and pnl hold the stored `Decimal` objects (dtype object; None where a
    fee or pnl is missing): sum them with `frame.price.sum()` or Python's `sum`, and convert to
    float yourself where an approximation will do. Times are `datetime64[us, UTC]`; ids are
    int64 (`backtest_id` is the nullable Int64); metadata holds the read-only dicts.
    """
    return _dataframe(trade_columns(trades))


async def stream_to_dataframe(trades: AsyncIterable[Trade]) -> Any:
    """`trades_to_dataframe` of a stream, e.g. `await stream_to_dataframe(db.trades.stream(
    backtest_id=3))`; the records are turned into columns as they arrive."""
    return _dataframe(await _collect_columns(trades))


def _dataframe(columns: Columns) -> Any:
    pd = import_extra("pandas", "a DataFrame of trades")
    numpy = import_extra("numpy", "a DataFrame of trades")
    data: dict[str, Any] = {}
    for name in TRADE_FIELDS:
        values = columns[name]
        if name in TIME_FIELDS:
            micros = numpy.array([epoch_micros(moment) for moment in values], dtype="int64")
            data[name] = pd.Series(micros.view("datetime64[us]")).dt.tz_localize("UTC")
        elif name in ID_FIELDS:
            data[name] = pd.Series(values, dtype="Int64" if name == "backtest_id" else "int64")
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)


async def _collect_columns(trades: AsyncIterable[Trade], chunk: int = 5000) -> Columns:
    collected: Columns = {name: [] for name in TRADE_FIELDS}
    async for batch in chunked(trades, chunk):
        for name, values in trade_columns(batch).items():
            collected[name].extend(values)
    return collected


async def chunked(trades: AsyncIterable[Trade], size: int) -> AsyncIterator[list[Trade]]:
    """Lists of up to `size` trades from a stream, in order."""
    batch: list[Trade] = []
    async for trade in trades:
        batch.append(trade)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- Arrow ------------------------------------------------------------------------------------


def arrow_schema() -> Any:
    """The Arrow schema of trades: decimal128(38, 18) money, timestamp[us, UTC] times,
    metadata as JSON text."""
    pa = import_extra("pyarrow", "an Arrow table of trades")
    money = pa.decimal128(ARROW_PRECISION, ARROW_SCALE)
    instant = pa.timestamp("us", tz="UTC")
    types = {name: pa.int64() for name in ID_FIELDS}
    types.update({name: money for name in MONEY_FIELDS})
    types.update({name: instant for name in TIME_FIELDS})
    nullable = {"backtest_id", "fee", "pnl", "metadata", "external_id"}
    return pa.schema(
        [
            pa.field(name, types.get(name, pa.string()), nullable=name in nullable)
            for name in TRADE_FIELDS
        ]
    )


def trades_to_arrow(trades: Iterable[Trade]) -> Any:
    """An Arrow table of `trades` with `arrow_schema()`.

    Raises InvalidValue naming the trade and field for a stored amount of 10**20 or more,
    which decimal128(38, 18) cannot hold.
    """
    return arrow_batch(trade_columns(trades), arrow_schema())


async def stream_to_arrow(trades: AsyncIterable[Trade]) -> Any:
    """`trades_to_arrow` of a stream."""
    return arrow_batch(await _collect_columns(trades), arrow_schema())


def arrow_batch(columns: Columns, schema: Any) -> Any:
    """An Arrow table of `columns` (from `trade_columns`) with `schema`."""
    pa = import_extra("pyarrow", "an Arrow table of trades")
    columns = dict(columns, metadata=[metadata_text(m) for m in columns["metadata"]])
    arrays = []
    for field in schema:
        try:
            arrays.append(pa.array(columns[field.name], type=field.type, from_pandas=False))
        except pa.ArrowInvalid as exc:
            raise _too_large(columns, field.name) from exc
    return pa.Table.from_arrays(arrays, schema=schema)


def _too_large(columns: Columns, name: str) -> InvalidValue:
    """The error for a money column Arrow refused: the first amount decimal128(38, 18) cannot
    hold (the store allows 38 digits before the point, Arrow 20)."""
    for trade_id, amount in zip(columns["id"], columns[name], strict=True):
        if amount is not None and abs(amount) >= _ARROW_LIMIT:
            return InvalidValue(
                name,
                f"trade {trade_id} holds {amount}, more than decimal128(38, 18) can hold "
                "(under 10**20); export these trades as CSV instead",
            )
    return InvalidValue(name, "Arrow refused a value of this column")
