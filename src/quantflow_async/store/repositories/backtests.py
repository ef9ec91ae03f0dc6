"""Backtests: runs of a strategy over a period, with a status lifecycle and stored results."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.errors import InvalidTransition, InvalidValue, NotFound
from quantflow_async.records import BACKTEST_STATUSES, Backtest, DecimalInput
from quantflow_async.store.column_types import utc_now
from quantflow_async.store.driver_errors import translated_errors
from quantflow_async.store.engine import write_transaction
from quantflow_async.store.repositories._common import (
    UNSET,
    _Unset,
    fetch_all,
    fetch_one,
    insert_returning,
    json_document,
    optional_json_document,
    write_returning,
)
from quantflow_async.store.schema import backtests
from quantflow_async.validation import to_choice, to_decimal, to_id, to_label, to_utc

TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "pending": frozenset({"running", "cancelled"}),
    "running": frozenset({"completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
"""The backtest lifecycle: pending -> running -> completed | failed | cancelled.

A pending backtest may also be cancelled before it starts. Finished states are final.
"""


def _status(value: object) -> str:
    return to_choice(value, "status", BACKTEST_STATUSES)


def _record(row: Row[Any]) -> Backtest:
    return Backtest(**row._mapping)


class BacktestRepository:
    """Backtests of a strategy and their lifecycle."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        *,
        strategy_id: int,
        name: str,
        start_date: datetime,
        end_date: datetime,
        initial_capital: DecimalInput,
        config: Mapping[str, Any] | None = None,
    ) -> Backtest:
        """A new pending backtest; the strategy must exist, start < end, capital > 0."""
        strategy_id = to_id(strategy_id, "strategy_id")
        start = to_utc(start_date, "start_date")
        end = to_utc(end_date, "end_date")
        if start >= end:
            raise InvalidValue(
                "end_date", f"must be after start_date ({start.isoformat()}), got {end.isoformat()}"
            )
        capital = to_decimal(initial_capital, "initial_capital")
        if capital <= 0:
            raise InvalidValue("initial_capital", f"must be > 0, got {capital}")
        values = {
            "strategy_id": strategy_id,
            "name": to_label(name, "name", 200),
            "config": json_document({} if config is None else config, "config"),
            "start_date": start,
            "end_date": end,
            "initial_capital": capital,
        }
        row = await insert_returning(
            self._engine,
            insert(backtests).values(values).returning(backtests),
            f"creating backtest {values['name']!r}",
            row_error=lambda exc: NotFound("strategy", strategy_id),
        )
        return _record(row)

    async def get(self, backtest_id: int) -> Backtest:
        backtest_id = to_id(backtest_id, "backtest_id")
        query = select(backtests).where(backtests.c.id == backtest_id)
        row = await fetch_one(self._engine, query, f"reading backtest {backtest_id}")
        if row is None:
            raise NotFound("backtest", backtest_id)
        return _record(row)

    async def list(
        self, *, strategy_id: int | None = None, status: str | None = None
    ) -> list[Backtest]:
        """Backtests, optionally of one strategy and/or in one status, oldest first."""
        query = select(backtests).order_by(backtests.c.id)
        if strategy_id is not None:
            query = query.where(backtests.c.strategy_id == to_id(strategy_id, "strategy_id"))
        if status is not None:
            query = query.where(backtests.c.status == _status(status))
        return [_record(row) for row in await fetch_all(self._engine, query, "listing backtests")]

    async def set_status(self, backtest_id: int, status: str) -> Backtest:
        """Move a backtest along its lifecycle; any other move raises InvalidTransition."""
        backtest_id = to_id(backtest_id, "backtest_id")
        status = _status(status)
        allowed_from = [old for old, new in TRANSITIONS.items() if status in new]
        statement = (
            update(backtests)
            .where(backtests.c.id == backtest_id, backtests.c.status.in_(allowed_from))
            .values(status=status, updated_at=utc_now())
            .returning(backtests)
        )
        with translated_errors(f"setting the status of backtest {backtest_id}"):
            async with write_transaction(self._engine) as conn:
                row = (await conn.execute(statement)).one_or_none()
                if row is None:
                    current = await conn.scalar(
                        select(backtests.c.status).where(backtests.c.id == backtest_id)
                    )
        if row is not None:
            return _record(row)
        if current is None:
            raise NotFound("backtest", backtest_id)
        raise InvalidTransition(backtest_id, current, status)

    async def save_results(
        self,
        backtest_id: int,
        *,
        metrics: Mapping[str, Any] | None | _Unset = UNSET,
        results: Mapping[str, Any] | None | _Unset = UNSET,
    ) -> Backtest:
        """Store the performance metrics and/or the detailed results (JSON objects)."""
        backtest_id = to_id(backtest_id, "backtest_id")
        values: dict[str, Any] = {"updated_at": utc_now()}
        if metrics is not UNSET:
            values["metrics"] = optional_json_document(metrics, "metrics")
        if results is not UNSET:
            values["results"] = optional_json_document(results, "results")
        statement = (
            update(backtests)
            .where(backtests.c.id == backtest_id)
            .values(values)
            .returning(backtests)
        )
        row = await write_returning(
            self._engine, statement, f"saving the results of backtest {backtest_id}"
        )
        if row is None:
            raise NotFound("backtest", backtest_id)
        return _record(row)

    async def delete(self, backtest_id: int) -> None:
        """Delete a backtest together with its trades (the foreign key cascades)."""
        backtest_id = to_id(backtest_id, "backtest_id")
        statement = delete(backtests).where(backtests.c.id == backtest_id).returning(backtests.c.id)
        if (
            await write_returning(self._engine, statement, f"deleting backtest {backtest_id}")
            is None
        ):
            raise NotFound("backtest", backtest_id)
