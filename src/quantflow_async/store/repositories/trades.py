"""Trades: stored fills. Bulk insert, keyset-paged listing, counts and exact summaries."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal, Inexact, localcontext
from typing import Any, Final

from sqlalchemy import ColumnElement, Row, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.errors import Conflict, InvalidValue, NotFound, QuantFlowError
from quantflow_async.records import Fill, SymbolSummary, Trade
from quantflow_async.store.driver_errors import Fault, classify, describe
from quantflow_async.store.engine import read_transaction
from quantflow_async.store.repositories._common import DRIVER_ERRORS, storage_error
from quantflow_async.store.schema import backtests, strategies, trades
from quantflow_async.store.trade_insert import driver_connection, sink_for
from quantflow_async.validation import to_id, to_label, to_utc

MAX_PAGE: Final = 100_000
INSERT_CHUNK: Final = 10_000
# Enough digits for sums of 38-digit products over billions of rows; Inexact is trapped,
# so a sum that would ever need rounding raises instead of drifting.
_SUM_PRECISION: Final = 120


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """Which trades a read covers. `since` is inclusive, `until` exclusive."""

    backtest_id: int | None = None
    strategy_id: int | None = None
    symbol: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.backtest_id is not None:
            found.append(trades.c.backtest_id == to_id(self.backtest_id, "backtest_id"))
        if self.strategy_id is not None:
            found.append(trades.c.strategy_id == to_id(self.strategy_id, "strategy_id"))
        if self.symbol is not None:
            found.append(trades.c.symbol == to_label(self.symbol, "symbol", 64))
        if self.since is not None:
            found.append(trades.c.executed_at >= to_utc(self.since, "since"))
        if self.until is not None:
            found.append(trades.c.executed_at < to_utc(self.until, "until"))
        return found


# The columns in the order of Trade's fields, so a row becomes a record positionally:
# the cheapest construction, and paging spends most of its time making records.
_TRADE_COLUMNS = [trades.c[field.name] for field in fields(Trade)]


def _record(row: Row[Any]) -> Trade:
    values: tuple[Any, ...] = tuple(row)
    return Trade(*values)


class TradeRepository:
    """Stored fills: written in batches, read in pages ordered by (executed_at, id)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sink = sink_for(engine.dialect.name)

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
            async with self._engine.connect() as conn:
                driver = await driver_connection(conn)
                async with self._sink.transaction(driver):
                    inserted = 0
                    for start in range(0, len(fills), INSERT_CHUNK):
                        chunk = fills[start : start + INSERT_CHUNK]
                        inserted += await self._sink.insert(driver, chunk)
        except QuantFlowError:
            raise
        except Exception as exc:
            if classify(exc) is Fault.ROW:
                raise await self.explain_rejection(fills, exc) from exc
            storage_error(exc, f"inserting {len(fills)} fills")
        return inserted

    async def explain_rejection(self, fills: Sequence[Fill], exc: BaseException) -> QuantFlowError:
        """The error that names why the database refused `fills`: a missing or foreign id."""
        strategy_ids = {f.strategy_id for f in fills}
        backtest_ids = {f.backtest_id for f in fills if f.backtest_id is not None}
        async with read_transaction(self._engine) as conn:
            known_strategies = set(
                (
                    await conn.scalars(
                        select(strategies.c.id).where(strategies.c.id.in_(strategy_ids))
                    )
                ).all()
            )
            owner_rows = await conn.execute(
                select(backtests.c.id, backtests.c.strategy_id).where(
                    backtests.c.id.in_(backtest_ids)
                )
            )
            owners: dict[int, int] = {backtest: owner for backtest, owner in owner_rows}
        for fill in fills:
            if fill.strategy_id not in known_strategies:
                return NotFound("strategy", fill.strategy_id, field="strategy_id")
            if fill.backtest_id is None:
                continue
            owner = owners.get(fill.backtest_id)
            if owner is None:
                return NotFound("backtest", fill.backtest_id, field="backtest_id")
            if owner != fill.strategy_id:
                return Conflict(
                    f"backtest {fill.backtest_id} belongs to strategy {owner}, "
                    f"not to strategy {fill.strategy_id}"
                )
        return InvalidValue("fills", f"the database refused a fill: {describe(exc)}")

    async def get(self, trade_id: int) -> Trade:
        trade_id = to_id(trade_id, "trade_id")
        try:
            async with read_transaction(self._engine) as conn:
                query = select(*_TRADE_COLUMNS).where(trades.c.id == trade_id)
                row = (await conn.execute(query)).one_or_none()
        except DRIVER_ERRORS as exc:
            storage_error(exc, f"reading trade {trade_id}")
        if row is None:
            raise NotFound("trade", trade_id)
        return _record(row)

    async def list(
        self,
        *,
        backtest_id: int | None = None,
        strategy_id: int | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int = 1000,
    ) -> list[Trade]:
        """One page of trades in (executed_at, id) order.

        Pass the id of the last trade of a page as `after_id` to get the next page; each page
        is an index range scan, as cheap at row ten million as at row one.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidValue("limit", f"must be an int from 1 to {MAX_PAGE}, got {limit!r}")
        where = TradeFilter(backtest_id, strategy_id, symbol, since, until).conditions()
        query = select(*_TRADE_COLUMNS).order_by(trades.c.executed_at, trades.c.id).limit(limit)
        try:
            async with read_transaction(self._engine) as conn:
                if after_id is not None:
                    after_id = to_id(after_id, "after_id")
                    anchor = await conn.scalar(
                        select(trades.c.executed_at).where(trades.c.id == after_id)
                    )
                    if anchor is None:
                        raise NotFound("trade", after_id, field="after_id")
                    where.append(self._after(anchor, after_id))
                rows = (await conn.execute(query.where(*where))).all()
        except DRIVER_ERRORS as exc:
            storage_error(exc, "listing trades")
        return [_record(row) for row in rows]

    @staticmethod
    def _after(executed_at: datetime, trade_id: int) -> ColumnElement[bool]:
        # The first term is an index range on (..., executed_at); the second settles ties.
        return and_(
            trades.c.executed_at >= executed_at,
            or_(trades.c.executed_at > executed_at, trades.c.id > trade_id),
        )

    async def count(
        self,
        *,
        backtest_id: int | None = None,
        strategy_id: int | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        where = TradeFilter(backtest_id, strategy_id, symbol, since, until).conditions()
        try:
            async with read_transaction(self._engine) as conn:
                total = await conn.scalar(select(func.count()).select_from(trades).where(*where))
        except DRIVER_ERRORS as exc:
            storage_error(exc, "counting trades")
        return int(total or 0)

    async def summary(
        self,
        *,
        backtest_id: int | None = None,
        strategy_id: int | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[SymbolSummary]:
        """Per-symbol totals, exact in Decimal, ordered by symbol.

        notional is the sum of quantity x price over buys and sells; fees and realized pnl
        count missing values as zero.
        """
        where = TradeFilter(backtest_id, strategy_id, symbol, since, until).conditions()
        try:
            async with read_transaction(self._engine) as conn:
                if self._engine.dialect.name == "postgresql":
                    return await self._summary_in_sql(conn, where)
                return await self._summary_in_python(conn, where)
        except DRIVER_ERRORS as exc:
            storage_error(exc, "summarising trades")

    async def _summary_in_sql(
        self, conn: Any, where: builtins.list[ColumnElement[bool]]
    ) -> builtins.list[SymbolSummary]:
        zero = literal(Decimal(0))
        query = (
            select(
                trades.c.symbol,
                func.count(),
                func.coalesce(func.sum(case((trades.c.side == "buy", trades.c.quantity))), zero),
                func.coalesce(func.sum(case((trades.c.side == "sell", trades.c.quantity))), zero),
                func.coalesce(func.sum(trades.c.quantity * trades.c.price), zero),
                func.coalesce(func.sum(trades.c.fee), zero),
                func.coalesce(func.sum(trades.c.pnl), zero),
            )
            .where(*where)
            .group_by(trades.c.symbol)
            .order_by(trades.c.symbol)
        )
        rows = (await conn.execute(query)).all()
        return [
            SymbolSummary(sym, int(n), Decimal(b), Decimal(s), Decimal(v), Decimal(f), Decimal(p))
            for sym, n, b, s, v, f, p in rows
        ]

    async def _summary_in_python(
        self, conn: Any, where: builtins.list[ColumnElement[bool]]
    ) -> builtins.list[SymbolSummary]:
        # SQLite's SUM works in floating point, so the exact sums are taken here.
        c = trades.c
        query = select(c.symbol, c.side, c.quantity, c.price, c.fee, c.pnl).where(*where)
        totals: dict[str, builtins.list[Any]] = {}
        stream = await conn.stream(query.execution_options(yield_per=5000))
        with localcontext() as ctx:
            ctx.prec = _SUM_PRECISION
            ctx.traps[Inexact] = True
            async for sym, side, quantity, price, fee, pnl in stream:
                entry = totals.get(sym)
                if entry is None:
                    entry = totals[sym] = [0, *(Decimal(0) for _ in range(5))]
                entry[0] += 1
                entry[1 if side == "buy" else 2] += quantity
                entry[3] += quantity * price
                if fee is not None:
                    entry[4] += fee
                if pnl is not None:
                    entry[5] += pnl
        return [SymbolSummary(sym, *totals[sym]) for sym in sorted(totals)]
