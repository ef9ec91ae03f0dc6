"""The one statement that stores a batch of fills, per backend, on a raw driver connection.

Both `TradeRepository.insert_many` and `TradeWriter` go through here, inside a transaction
their caller owns. A fill whose `external_id` is already stored is skipped by the database
(ON CONFLICT DO NOTHING), and the count of rows actually inserted is returned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import anyio
import anyio.lowlevel
from sqlalchemy import Integer
from sqlalchemy.ext.asyncio import AsyncConnection

from quantflow_async.records import TRADE_INSERT_COLUMNS, Fill, postgres_columns, sqlite_rows
from quantflow_async.store.column_types import ExactDecimal, UTCDateTime
from quantflow_async.store.schema import trades
from quantflow_async.validation import epoch_micros

_COLUMNS = ", ".join(TRADE_INSERT_COLUMNS)
_PLACEHOLDERS = ", ".join("?" for _ in TRADE_INSERT_COLUMNS)

# `now` is an integer the library computes, never a caller's value; inlining it keeps
# every row's parameters the ready tuple made by Fill.
SQLITE_INSERT = (
    f"INSERT INTO trades ({_COLUMNS}, created_at, updated_at) "  # noqa: S608 - our names only
    f"VALUES ({_PLACEHOLDERS}, {{now}}, {{now}}) "
    "ON CONFLICT (external_id) DO NOTHING"
)


def _pg_array_type(name: str) -> str:
    column_type = trades.c[name].type
    if isinstance(column_type, ExactDecimal):
        return "numeric"
    if isinstance(column_type, UTCDateTime):
        return "timestamptz"
    if isinstance(column_type, Integer):
        return "bigint"
    return "text"  # strings, and JSON as text, cast to jsonb in the SELECT


_PG_ARRAY_TYPES = tuple(_pg_array_type(name) for name in TRADE_INSERT_COLUMNS)
_PG_SOURCE = ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(_PG_ARRAY_TYPES, start=1))
_PG_SELECT = ", ".join(
    f"c{n}::jsonb" if name == "metadata" else f"c{n}"
    for n, name in enumerate(TRADE_INSERT_COLUMNS, start=1)
)
_PG_ALIASES = ", ".join(f"c{n}" for n in range(1, len(TRADE_INSERT_COLUMNS) + 1))
_NOW_PARAM = len(TRADE_INSERT_COLUMNS) + 1
PG_INSERT = (
    f"INSERT INTO trades ({_COLUMNS}, created_at, updated_at) "  # noqa: S608 - our names only
    f"SELECT {_PG_SELECT}, ${_NOW_PARAM}::timestamptz, ${_NOW_PARAM}::timestamptz "
    f"FROM unnest({_PG_SOURCE}) AS batch({_PG_ALIASES}) "
    "ON CONFLICT (external_id) DO NOTHING"
)


PG_COPY_FROM: Final = 200
"""From this many fills on, PostgreSQL inserts go through COPY."""
PG_COPY_SLICE: Final = 200
"""Fills whose COPY rows are made and encoded between two turns of the event loop."""
PG_INCOMING = "trades_incoming"
_PG_INCOMING_COLUMNS = ", ".join(
    f"{name} {kind}" for name, kind in zip(TRADE_INSERT_COLUMNS, _PG_ARRAY_TYPES, strict=True)
)
# Per connection, emptied by every commit; no index, so COPY into it is as cheap as COPY gets.
PG_CREATE_INCOMING = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {PG_INCOMING} ({_PG_INCOMING_COLUMNS}) "
    "ON COMMIT DELETE ROWS"
)
_PG_INCOMING_SELECT = ", ".join(
    f"{name}::jsonb" if name == "metadata" else name for name in TRADE_INSERT_COLUMNS
)
# A temporary table is never scanned in parallel: rows come out in the order COPY wrote them,
# so ids follow the order of the batch.
PG_INSERT_INCOMING = (
    f"INSERT INTO trades ({_COLUMNS}, created_at, updated_at) "  # noqa: S608 - our names only
    f"SELECT {_PG_INCOMING_SELECT}, $1::timestamptz, $1::timestamptz FROM {PG_INCOMING} "
    "ON CONFLICT (external_id) DO NOTHING"
)

# A writer's batch token, written in the batch's own transaction (see schema.writer_batches).
# The prune deletes the writer's previous token, whose batch it already knows the fate of, and
# tokens left by writers that died.
SQLITE_RECORD_BATCH = "INSERT INTO writer_batches (token, inserted, committed_at) VALUES (?, ?, ?)"
SQLITE_FORGET_BATCHES = "DELETE FROM writer_batches WHERE token = ? OR committed_at < ?"
SQLITE_FIND_BATCH = "SELECT inserted FROM writer_batches WHERE token = ?"
PG_RECORD_BATCH = "INSERT INTO writer_batches (token, inserted, committed_at) VALUES ($1, $2, $3)"
PG_FORGET_BATCHES = "DELETE FROM writer_batches WHERE token = $1 OR committed_at < $2"
PG_FIND_BATCH = "SELECT inserted FROM writer_batches WHERE token = $1"


class FillSink(Protocol):
    def transaction(self, driver_connection: Any) -> AbstractAsyncContextManager[None]:
        """A write transaction on the raw connection: committed on exit, rolled back on error."""
        ...

    async def insert(self, driver_connection: Any, fills: Sequence[Fill]) -> int:
        """Insert `fills` in the caller's open transaction; return how many were new."""
        ...


class SqliteFillSink:
    """executemany of the rows each Fill made when it was created (aiosqlite)."""

    @asynccontextmanager
    async def transaction(self, driver_connection: Any) -> AsyncIterator[None]:
        # IMMEDIATE takes the write lock now (waiting out busy_timeout), not half-way through.
        await driver_connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            await driver_connection.execute("COMMIT")
        except BaseException:
            await _rollback_quietly(driver_connection)
            raise

    async def insert(self, driver_connection: Any, fills: Sequence[Fill]) -> int:
        sql = SQLITE_INSERT.format(now=epoch_micros(datetime.now(UTC)))
        cursor = await driver_connection.executemany(sql, sqlite_rows(fills))
        try:
            return int(cursor.rowcount)
        finally:
            await cursor.close()


class PostgresFillSink:
    """Fills into trades on asyncpg, exact NUMERIC and timestamptz.

    Large batches are COPied straight into trades; if that breaks a rule (an external_id
    stored already, a bad row) the savepoint is rolled back and the batch goes through COPY
    into a temporary table of the connection's own, then one
    `INSERT ... SELECT ... ON CONFLICT DO NOTHING`, so `external_id` stays idempotent. Small
    batches (a live bot's single fill) take one `INSERT ... SELECT FROM unnest`, one round
    trip.
    """

    @asynccontextmanager
    async def transaction(self, driver_connection: Any) -> AsyncIterator[None]:
        async with driver_connection.transaction():
            yield

    async def insert(self, driver_connection: Any, fills: Sequence[Fill]) -> int:
        now = datetime.now(UTC)
        if len(fills) < PG_COPY_FROM:
            columns = postgres_columns(fills)
            status: str = await driver_connection.execute(PG_INSERT, *columns, now)
            return int(status.rsplit(" ", 1)[-1])
        try:
            # Most batches hold no fill that is stored already: COPY them straight into
            # trades, in a savepoint, at the full speed of COPY.
            async with driver_connection.transaction():
                await driver_connection.copy_records_to_table(
                    "trades", records=CopyRecords(fills), columns=TRADE_INSERT_COLUMNS
                )
            return len(fills)
        except Exception as exc:
            if str(getattr(exc, "sqlstate", ""))[:2] != "23":  # not a rule a row broke
                raise
        # A duplicate external_id (or a bad row): through the temporary table, where
        # ON CONFLICT skips the duplicates and a bad row fails the statement as usual.
        await driver_connection.execute(PG_CREATE_INCOMING)
        await driver_connection.copy_records_to_table(
            PG_INCOMING, records=CopyRecords(fills), columns=TRADE_INSERT_COLUMNS
        )
        status = await driver_connection.execute(PG_INSERT_INCOMING, now)
        return int(status.rsplit(" ", 1)[-1])


class CopyRecords:
    """The COPY rows of a batch, made and handed to asyncpg a slice at a time, with the event
    loop getting a turn between slices.

    asyncpg encodes the rows of a COPY on the event loop without a pause of its own (it
    yields only when the socket's buffer is full): a batch of 5,000 fills held the loop for
    20 ms and more, measured, so a producer's other tasks ran late. A slice of fills is about
    a millisecond of that work.
    """

    def __init__(self, fills: Sequence[Fill]) -> None:
        self._fills = fills
        self._start = 0
        self._slice: Iterator[tuple[Any, ...]] = iter(())

    def __aiter__(self) -> CopyRecords:
        return self

    async def __anext__(self) -> tuple[Any, ...]:
        record = next(self._slice, None)
        if record is not None:
            return record
        start = self._start
        if start >= len(self._fills):
            raise StopAsyncIteration
        if start:
            await anyio.lowlevel.checkpoint()
        self._start = start + PG_COPY_SLICE
        part = self._fills[start : self._start]
        self._slice = zip(*postgres_columns(part), strict=True)
        return next(self._slice)


async def _rollback_quietly(driver_connection: Any) -> None:
    # The original error matters more than a failed rollback on a broken connection;
    # the shield lets the rollback finish even when a cancellation brought us here.
    with anyio.CancelScope(shield=True), suppress(Exception):
        await driver_connection.execute("ROLLBACK")


def sink_for(dialect_name: str) -> FillSink:
    if dialect_name == "sqlite":
        return SqliteFillSink()
    if dialect_name == "postgresql":
        return PostgresFillSink()
    raise NotImplementedError(f"no fill sink for the {dialect_name!r} dialect")


async def driver_connection(connection: AsyncConnection) -> Any:
    """The aiosqlite or asyncpg connection under a SQLAlchemy AsyncConnection."""
    raw = await connection.get_raw_connection()
    return raw.driver_connection
