"""Trades: stored fills. Bulk insert, keyset-paged listing, streaming, counts, exact summaries."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.errors import InvalidValue, NotFound
from quantflow_async.records import Fill, SymbolSummary, Trade
from quantflow_async.store.driver_errors import describe, translated_errors
from quantflow_async.store.references import broken_references
from quantflow_async.store.repositories._common import Repository
from quantflow_async.store.repositories.trade_rows import (
    TRADE_COLUMNS,
    Select,
    TradeFilter,
    TradeQuery,
    backend_for,
    trade_filter,
)
from quantflow_async.store.trade_insert import driver_connection, sink_for
from quantflow_async.validation import to_id

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["MAX_PAGE", "TradeFilter", "TradeQuery", "TradeRepository"]

MAX_PAGE: Final = 100_000
INSERT_CHUNK: Final = 10_000
_COLUMNS: Final = ", ".join(TRADE_COLUMNS)


def _refused(exc: BaseException) -> InvalidValue:
    return InvalidValue("fills", f"the database refused a fill: {describe(exc)}")


def _page_size(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise InvalidValue(field, f"must be an int from 1 to {MAX_PAGE}, got {value!r}")
    return value


class TradeRepository(Repository):
    """Stored fills: written in batches, read in pages or streamed, ordered by (executed_at, id).

    Reads go to the driver directly (see trade_rows), one statement each, so every page and
    every count sees one consistent snapshot.

    Which reads an index serves: a backtest's fills (`backtest_id=`), and live fills
    (`live=True`) by strategy, symbol or time, each in time order. The strategy, symbol and
    time indexes hold live fills only, since a sweep's fills would land all over them; a read
    by strategy, symbol or time without `live=True` is still exact, but looks at every
    backtest fill too.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._sink = sink_for(engine.dialect.name)
        self._backend = backend_for(engine.dialect.name)

    async def insert_many(self, fills: Sequence[Fill]) -> int:
        """Store `fills` in one transaction; return how many were new.

        A fill whose external_id is already stored is skipped. If any fill cannot be stored
        (its strategy or backtest does not exist), none is, and the error names the id.
        """
        for index, fill in enumerate(fills):
            if not isinstance(fill, Fill):
                raise InvalidValue(f"fills[{index}]", f"expected Fill, got {type(fill).__name__}")
        if not fills:
            return 0
        try:
            with translated_errors(f"inserting {len(fills)} fills", row_error=_refused):
                async with self._engine.connect() as conn:
                    driver = await driver_connection(conn)
                    async with self._sink.transaction(driver):
                        inserted = 0
                        for start in range(0, len(fills), INSERT_CHUNK):
                            chunk = fills[start : start + INSERT_CHUNK]
                            inserted += await self._sink.insert(driver, chunk)
        except InvalidValue as refused:
            # Most refusals are a strategy or backtest that does not exist: name it.
            with translated_errors("finding the fills the database refused"):
                broken = await broken_references(self._engine, fills)
            if broken:
                raise broken[min(broken)] from refused.__cause__
            raise
        return inserted

    @asynccontextmanager
    async def _driver(self, action: str) -> AsyncIterator[Any]:
        """The raw driver connection of a pooled connection, inside the error boundary."""
        with translated_errors(action):
            async with self._engine.connect() as conn:
                yield await driver_connection(conn)

    async def get(self, trade_id: int) -> Trade:
        trade_id = to_id(trade_id, "trade_id")
        query = Select(self._backend, _COLUMNS)
        query.where(f"id = {query.bind(trade_id)}")
        async with self._driver(f"reading trade {trade_id}") as driver:
            rows = await self._backend.fetch(driver, query)
        if not rows:
            raise NotFound("trade", trade_id)
        return self._backend.records(rows)[0]

    async def list(
        self,
        *,
        after_id: int | None = None,
        limit: int = 1000,
        **filters: Unpack[TradeQuery],
    ) -> list[Trade]:
        """One page of trades in (executed_at, id) order.

        Pass the id of the last trade of a page as `after_id` to get the next page; each page
        is an index range scan, as cheap at row ten million as at row one.
        """
        limit = _page_size(limit, "limit")
        wanted = trade_filter(filters)
        query = Select(self._backend, _COLUMNS).matching(wanted)
        if after_id is not None:
            after_id = to_id(after_id, "after_id")
            query.after_trade(after_id)
        async with self._driver("listing trades") as driver:
            page = await self._backend.read_trades(driver, query.page(limit))
            if not page and after_id is not None:
                await self._require_trade(driver, after_id)
        return page

    async def _require_trade(self, driver: Any, trade_id: int) -> None:
        query = Select(self._backend, "id")
        query.where(f"id = {query.bind(trade_id)}")
        if not await self._backend.fetch(driver, query):
            raise NotFound("trade", trade_id, field="after_id")

    async def stream(
        self,
        *,
        chunk_size: int = 5000,
        **filters: Unpack[TradeQuery],
    ) -> AsyncIterator[Trade]:
        """Every matching trade in (executed_at, id) order, read `chunk_size` at a time.

        Memory stays at one chunk however many trades match, so it suits exports and
        analysis of whole backtests. Each chunk is its own short read (no connection or
        snapshot is held while the caller works), so a trade committed during the stream
        appears if it sorts after the position reached, and not otherwise.
        """
        chunk_size = _page_size(chunk_size, "chunk_size")
        wanted = trade_filter(filters)
        after: tuple[Any, int] | None = None
        while True:
            query = Select(self._backend, _COLUMNS).matching(wanted)
            if after is not None:
                query.after_position(*after)
            async with self._driver("streaming trades") as driver:
                chunk = await self._backend.read_trades(driver, query.page(chunk_size))
            for trade in chunk:
                yield trade
            if len(chunk) < chunk_size:
                return
            last = chunk[-1]
            after = (self._backend.instant(last.executed_at), last.id)

    async def count(
        self,
        **filters: Unpack[TradeQuery],
    ) -> int:
        wanted = trade_filter(filters)
        query = Select(self._backend, "count(*)").matching(wanted)
        async with self._driver("counting trades") as driver:
            ((total,),) = await self._backend.fetch(driver, query)
        return int(total)

    async def summary(
        self,
        **filters: Unpack[TradeQuery],
    ) -> builtins.list[SymbolSummary]:
        """Per-symbol totals, exact in Decimal, ordered by symbol.

        notional is the sum of quantity x price over buys and sells; fees and realized pnl
        count missing values as zero.
        """
        wanted = trade_filter(filters)
        async with self._driver("summarising trades") as driver:
            return await self._backend.summary(driver, wanted)
