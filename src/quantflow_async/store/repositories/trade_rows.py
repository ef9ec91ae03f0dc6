"""Trades read straight from the driver: the SELECT statements per backend and their rows as
records, written for speed because reading back a backtest spends its time here.

SQLAlchemy's per-value type processing and row objects cost more than the driver's own fetch,
so these reads take the aiosqlite or asyncpg connection under the engine's connection and
convert each value once: one Decimal per decimal text and one datetime per epoch-microsecond
integer on SQLite; asyncpg already gives Decimal and datetime. On SQLite a page is one call
into the driver's thread, which runs the statement and fetches every row.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, Inexact, localcontext
from typing import Any, Final, Protocol, TypedDict, TypeVar

from quantflow_async.errors import InvalidValue
from quantflow_async.record_maker import record_maker
from quantflow_async.records import TRADE_INSERT_COLUMNS, SymbolSummary, Trade
from quantflow_async.store.repositories.page_records import (
    collector_paused,
    records_a_slice_at_a_time,
)
from quantflow_async.store.schema import LIVE_FILLS, trades
from quantflow_async.validation import (
    EPOCH,
    epoch_micros,
    refuse_unknown_keywords,
    to_id,
    to_label,
    to_utc,
)

R = TypeVar("R")

TRADE_COLUMNS: Final = ("id", *TRADE_INSERT_COLUMNS, "created_at", "updated_at")
"""The columns a trade read selects, in the order the row converters below unpack them."""

# Enough digits for sums of 38-digit products over billions of rows; Inexact is trapped,
# so a sum that would ever need rounding raises instead of drifting.
_SUM_PRECISION: Final = 120


make_trade: Final = record_maker(Trade, TRADE_COLUMNS)


class TradeQuery(TypedDict, total=False):
    """Which trades a read of `db.trades` covers, by keyword: every one given must hold.

    `backtest_id`, `strategy_id`, `symbol`; `since` (inclusive) and `until` (exclusive),
    aware datetimes; `live` True for live fills only (no backtest), False for backtest
    fills only, None (the default) for both.
    """

    backtest_id: int | None
    strategy_id: int | None
    symbol: str | None
    since: datetime | None
    until: datetime | None
    live: bool | None


def trade_filter(filters: Mapping[str, Any]) -> TradeFilter:
    """The checked TradeFilter of a read's keyword arguments; TypeError names one that is
    not a filter, InvalidValue a bad value."""
    refuse_unknown_keywords(filters, TradeQuery.__annotations__, "trade filter", "filters")
    return TradeFilter(**filters).checked()


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """Which trades a read covers. `since` is inclusive, `until` exclusive; `live` True keeps
    live fills only (no backtest), False backtest fills only, None both."""

    backtest_id: int | None = None
    strategy_id: int | None = None
    symbol: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    live: bool | None = None

    def checked(self) -> TradeFilter:
        """The same filter with every value validated (InvalidValue names the argument)."""
        live = self.live
        if live is not None and type(live) is not bool:
            raise InvalidValue("live", f"must be True, False or None, got {live!r}")
        if live and self.backtest_id is not None:
            raise InvalidValue(
                "live", "cannot be True with a backtest_id: a backtest's fills are never live"
            )
        return TradeFilter(
            None if self.backtest_id is None else to_id(self.backtest_id, "backtest_id"),
            None if self.strategy_id is None else to_id(self.strategy_id, "strategy_id"),
            None if self.symbol is None else to_label(self.symbol, "symbol", 64),
            None if self.since is None else to_utc(self.since, "since"),
            None if self.until is None else to_utc(self.until, "until"),
            live,
        )


class Select:
    """One SELECT on trades and its parameters, in the driver's own placeholder style."""

    def __init__(self, backend: Backend, columns: str) -> None:
        self._backend = backend
        self._columns = columns
        self._conditions: list[str] = []
        self.params: list[Any] = []
        self.tail = ""
        """What follows the WHERE clause: ORDER BY, GROUP BY, LIMIT."""

    def bind(self, value: object) -> str:
        self.params.append(value)
        return self._backend.placeholder(len(self.params))

    def where(self, condition: str) -> Select:
        self._conditions.append(condition)
        return self

    def matching(self, wanted: TradeFilter) -> Select:
        if wanted.backtest_id is not None:
            self.where(f"backtest_id = {self.bind(wanted.backtest_id)}")
        if wanted.live is not None:
            # Spelt as the partial indexes' own condition, which is how a read may use them.
            self.where(LIVE_FILLS if wanted.live else "backtest_id IS NOT NULL")
        if wanted.strategy_id is not None:
            self.where(f"strategy_id = {self.bind(wanted.strategy_id)}")
        if wanted.symbol is not None:
            self.where(f"symbol = {self.bind(wanted.symbol)}")
        if wanted.since is not None:
            self.where(f"executed_at >= {self.bind(self._backend.instant(wanted.since))}")
        if wanted.until is not None:
            self.where(f"executed_at < {self.bind(self._backend.instant(wanted.until))}")
        return self

    def after_trade(self, trade_id: int) -> Select:
        """Rows after the trade `trade_id` in (executed_at, id) order; none if it is missing."""
        anchor = f"(SELECT executed_at FROM {trades.name} WHERE id = {{}})"  # noqa: S608
        return self._after(lambda: anchor.format(self.bind(trade_id)), trade_id)

    def after_position(self, executed_at: object, trade_id: int) -> Select:
        """Rows after (executed_at, id), executed_at as the column stores it."""
        return self._after(lambda: self.bind(executed_at), trade_id)

    def _after(self, executed_at: Callable[[], str], trade_id: int) -> Select:
        # Bound in the order the placeholders appear, as positional drivers need.
        first, second, last = executed_at(), executed_at(), self.bind(trade_id)
        # The first term is an index range on (..., executed_at); the second settles ties.
        return self.where(f"executed_at >= {first} AND (executed_at > {second} OR id > {last})")

    def page(self, limit: int) -> Select:
        self.tail = f" ORDER BY executed_at, id LIMIT {self.bind(limit)}"
        return self

    def text(self) -> str:
        where = f" WHERE {' AND '.join(self._conditions)}" if self._conditions else ""
        return f"SELECT {self._columns} FROM {trades.name}{where}{self.tail}"  # noqa: S608


class Backend(Protocol):
    """How one driver takes parameters, runs a SELECT and gives its rows."""

    def placeholder(self, number: int) -> str: ...

    def instant(self, moment: datetime) -> object:
        """`moment` in the form the executed_at column stores."""
        ...

    async def fetch(self, driver: Any, query: Select) -> Sequence[Sequence[Any]]: ...

    def records(self, rows: Iterable[Sequence[Any]]) -> list[Trade]: ...

    async def read_trades(self, driver: Any, query: Select) -> list[Trade]:
        """The trades a SELECT of TRADE_COLUMNS gives, in its order."""
        ...

    async def summary(self, driver: Any, wanted: TradeFilter) -> list[SymbolSummary]: ...


class _Instants(dict[int, datetime]):
    """Epoch microseconds -> aware UTC datetime, each made on first use."""

    __slots__ = ()

    def __missing__(self, micros: int) -> datetime:
        moment = self[micros] = EPOCH + timedelta(0, 0, micros)
        return moment


_SUMMARY_COLUMNS: Final = "symbol, side, quantity, price, fee, pnl"
_SQLITE_CHUNK: Final = 5000
"""Rows of a summary the driver's thread fetches at a time while the event loop sums the chunk
before: a few hundred kilobytes of rows, and few hops to the thread."""


class SqliteBackend:
    """aiosqlite: decimal TEXT and epoch microseconds become Decimal and datetime here."""

    def placeholder(self, number: int) -> str:
        return "?"

    def instant(self, moment: datetime) -> object:
        return epoch_micros(moment)

    async def fetch(self, driver: Any, query: Select) -> Sequence[Sequence[Any]]:
        # One hop to the driver's thread; execute, fetch and close would be three.
        rows: Sequence[Sequence[Any]] = await driver.execute_fetchall(query.text(), query.params)
        return rows

    async def _chunks(
        self, driver: Any, query: Select
    ) -> AsyncGenerator[Sequence[Sequence[Any]], None]:
        """The rows of one statement (so one snapshot, however long it takes), a chunk at a
        time; the driver's thread fetches the next chunk while the caller works on this one.

        A summary holds no rows beyond one chunk, however many trades it covers.
        """
        size = _SQLITE_CHUNK
        async with driver.execute(query.text(), query.params) as cursor:
            ahead = asyncio.ensure_future(cursor.fetchmany(size))
            try:
                while True:
                    rows = await ahead
                    if len(rows) < size:
                        if rows:
                            yield rows
                        return
                    ahead = asyncio.ensure_future(cursor.fetchmany(size))
                    yield rows
            finally:
                # Left early (an error, a cancellation): the fetch ahead is not wanted.
                ahead.cancel()

    async def read_trades(self, driver: Any, query: Select) -> list[Trade]:
        # A page is fetched whole, then converted. Fetching chunks ahead while converting
        # gained nothing: the driver's thread needs the GIL for every row it makes, and gets it
        # from the converting loop only every switch interval, so the two never overlapped,
        # while each chunk cost a hop to the thread (14 hops a page, now 6).
        with collector_paused():
            return await records_a_slice_at_a_time(self.records, await self.fetch(driver, query))

    def records(self, rows: Iterable[Sequence[Any]]) -> list[Trade]:
        make, number, loads, epoch, delta = make_trade, Decimal, json.loads, EPOCH, timedelta
        # created_at and updated_at are shared by every fill of a writer's batch: each instant
        # is made once per page (a dict lookup after that) instead of once per row.
        stamps = _Instants()
        # One comprehension with the conversions inline: a helper call per value would cost
        # a third of the whole read.
        with collector_paused():
            return [
                make(
                    id,
                    strategy_id,
                    backtest_id,
                    symbol,
                    side,
                    type,
                    number(quantity),
                    number(price),
                    None if fee is None else number(fee),
                    epoch + delta(0, 0, executed_at),
                    status,
                    None if metadata is None else loads(metadata),
                    None if pnl is None else number(pnl),
                    external_id,
                    stamps[created_at],
                    stamps[updated_at],
                )
                for (
                    id,
                    strategy_id,
                    backtest_id,
                    symbol,
                    side,
                    type,
                    quantity,
                    price,
                    fee,
                    executed_at,
                    status,
                    metadata,
                    pnl,
                    external_id,
                    created_at,
                    updated_at,
                ) in rows
            ]

    async def summary(self, driver: Any, wanted: TradeFilter) -> list[SymbolSummary]:
        # SQLite's SUM works in floating point, so the exact sums are taken here, in Decimal.
        query = Select(self, _SUMMARY_COLUMNS).matching(wanted)
        totals: dict[str, list[Any]] = {}
        number = Decimal
        with localcontext() as context:
            context.prec = _SUM_PRECISION
            context.traps[Inexact] = True
            async with aclosing(self._chunks(driver, query)) as chunks:
                async for rows in chunks:
                    for symbol, side, quantity, price, fee, pnl in rows:
                        entry = totals.get(symbol)
                        if entry is None:
                            entry = totals[symbol] = [0, *(Decimal(0) for _ in range(5))]
                        amount = number(quantity)
                        entry[0] += 1
                        entry[1 if side == "buy" else 2] += amount
                        entry[3] += amount * number(price)
                        if fee is not None:
                            entry[4] += number(fee)
                        if pnl is not None:
                            entry[5] += number(pnl)
        return [SymbolSummary(symbol, *totals[symbol]) for symbol in sorted(totals)]


class PostgresBackend:
    """asyncpg: NUMERIC and timestamptz arrive as Decimal and datetime; sums are exact in SQL."""

    def placeholder(self, number: int) -> str:
        return f"${number}"

    def instant(self, moment: datetime) -> object:
        return moment

    async def fetch(self, driver: Any, query: Select) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await driver.fetch(query.text(), *query.params)
        return rows

    def records(self, rows: Iterable[Sequence[Any]]) -> list[Trade]:
        # jsonb arrives parsed: SQLAlchemy sets a JSON codec on every connection it opens.
        make = make_trade
        with collector_paused():
            return [make(*row) for row in rows]

    async def read_trades(self, driver: Any, query: Select) -> list[Trade]:
        with collector_paused():
            return await records_a_slice_at_a_time(self.records, await self.fetch(driver, query))

    async def summary(self, driver: Any, wanted: TradeFilter) -> list[SymbolSummary]:
        query = Select(
            self,
            "symbol, count(*),"
            " coalesce(sum(quantity) FILTER (WHERE side = 'buy'), 0),"
            " coalesce(sum(quantity) FILTER (WHERE side = 'sell'), 0),"
            " coalesce(sum(quantity * price), 0), coalesce(sum(fee), 0), coalesce(sum(pnl), 0)",
        ).matching(wanted)
        query.tail = " GROUP BY symbol ORDER BY symbol"
        rows = await self.fetch(driver, query)
        return [SymbolSummary(row[0], int(row[1]), *row[2:]) for row in rows]


def backend_for(dialect_name: str) -> Backend:
    if dialect_name == "sqlite":
        return SqliteBackend()
    if dialect_name == "postgresql":
        return PostgresBackend()
    raise NotImplementedError(f"no trade reader for the {dialect_name!r} dialect")
