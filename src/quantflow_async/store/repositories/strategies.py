"""Strategies: named trading configurations that own backtests and trades."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.errors import Conflict, NotFound
from quantflow_async.records import STRATEGY_STATUSES, Strategy
from quantflow_async.store.column_types import utc_now
from quantflow_async.store.engine import read_transaction, write_transaction
from quantflow_async.store.repositories._common import (
    DRIVER_ERRORS,
    UNSET,
    _Unset,
    json_document,
    optional_json_document,
    storage_error,
)
from quantflow_async.store.schema import backtests, strategies, trades
from quantflow_async.validation import to_choice, to_free_text, to_id, to_label

MAX_NAME_LENGTH = 200


def _status(value: object) -> str:
    return to_choice(value, "status", STRATEGY_STATUSES)


def _description(value: object) -> str | None:
    return None if value is None else to_free_text(value, "description")


def _record(row: Row[Any]) -> Strategy:
    return Strategy(**row._mapping)


class StrategyRepository:
    """Create, read, update and delete strategies. Names are unique."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        *,
        name: str,
        config: Mapping[str, Any] | None = None,
        description: str | None = None,
        status: str = "inactive",
        metrics: Mapping[str, Any] | None = None,
    ) -> Strategy:
        values = {
            "name": to_label(name, "name", MAX_NAME_LENGTH),
            "config": json_document({} if config is None else config, "config"),
            "description": _description(description),
            "status": _status(status),
            "metrics": optional_json_document(metrics, "metrics"),
        }
        try:
            async with write_transaction(self._engine) as conn:
                row = (
                    await conn.execute(insert(strategies).values(values).returning(strategies))
                ).one()
        except IntegrityError as exc:
            raise Conflict(f"a strategy named {values['name']!r} already exists") from exc
        except DRIVER_ERRORS as exc:
            storage_error(exc, f"creating strategy {values['name']!r}")
        return _record(row)

    async def get(self, strategy_id: int) -> Strategy:
        strategy_id = to_id(strategy_id, "strategy_id")
        return await self._one(strategies.c.id == strategy_id, NotFound("strategy", strategy_id))

    async def get_by_name(self, name: str) -> Strategy:
        name = to_label(name, "name", MAX_NAME_LENGTH)
        return await self._one(strategies.c.name == name, NotFound("strategy", name, field="name"))

    async def _one(self, condition: Any, missing: NotFound) -> Strategy:
        try:
            async with read_transaction(self._engine) as conn:
                row = (await conn.execute(select(strategies).where(condition))).one_or_none()
        except DRIVER_ERRORS as exc:
            storage_error(exc, "reading a strategy")
        if row is None:
            raise missing
        return _record(row)

    async def list(self, *, status: str | None = None) -> list[Strategy]:
        """All strategies, or those with `status`, oldest first."""
        query = select(strategies).order_by(strategies.c.id)
        if status is not None:
            query = query.where(strategies.c.status == _status(status))
        try:
            async with read_transaction(self._engine) as conn:
                rows = (await conn.execute(query)).all()
        except DRIVER_ERRORS as exc:
            storage_error(exc, "listing strategies")
        return [_record(row) for row in rows]

    async def update(
        self,
        strategy_id: int,
        *,
        name: str | _Unset = UNSET,
        config: Mapping[str, Any] | _Unset = UNSET,
        description: str | None | _Unset = UNSET,
        status: str | _Unset = UNSET,
        metrics: Mapping[str, Any] | None | _Unset = UNSET,
    ) -> Strategy:
        """Change the given fields only; `description=None` or `metrics=None` clears them."""
        strategy_id = to_id(strategy_id, "strategy_id")
        values: dict[str, Any] = {}
        if name is not UNSET:
            values["name"] = to_label(name, "name", MAX_NAME_LENGTH)
        if config is not UNSET:
            values["config"] = json_document(config, "config")
        if description is not UNSET:
            values["description"] = _description(description)
        if status is not UNSET:
            values["status"] = _status(status)
        if metrics is not UNSET:
            values["metrics"] = optional_json_document(metrics, "metrics")
        if not values:
            return await self.get(strategy_id)
        values["updated_at"] = utc_now()
        statement = (
            update(strategies)
            .where(strategies.c.id == strategy_id)
            .values(values)
            .returning(strategies)
        )
        try:
            async with write_transaction(self._engine) as conn:
                row = (await conn.execute(statement)).one_or_none()
        except IntegrityError as exc:
            raise Conflict(f"a strategy named {values.get('name')!r} already exists") from exc
        except DRIVER_ERRORS as exc:
            storage_error(exc, f"updating strategy {strategy_id}")
        if row is None:
            raise NotFound("strategy", strategy_id)
        return _record(row)

    async def delete(self, strategy_id: int) -> None:
        """Delete a strategy that has no backtests and no trades; otherwise raise Conflict."""
        strategy_id = to_id(strategy_id, "strategy_id")
        try:
            async with write_transaction(self._engine) as conn:
                owned = await conn.execute(
                    select(
                        select(func.count())
                        .where(backtests.c.strategy_id == strategy_id)
                        .scalar_subquery(),
                        exists().where(trades.c.strategy_id == strategy_id),
                    )
                )
                backtest_count, has_trades = owned.one()
                if backtest_count or has_trades:
                    raise Conflict(
                        f"strategy {strategy_id} still has {backtest_count} backtests"
                        f"{' and trades' if has_trades else ''}; delete those first"
                    )
                result = await conn.execute(
                    delete(strategies).where(strategies.c.id == strategy_id)
                )
        except DRIVER_ERRORS as exc:
            storage_error(exc, f"deleting strategy {strategy_id}")
        if result.rowcount == 0:
            raise NotFound("strategy", strategy_id)
