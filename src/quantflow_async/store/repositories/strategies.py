"""Strategies: named trading configurations that own backtests and trades."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Row, delete, exists, func, insert, select, update

from quantflow_async.errors import Conflict, NotFound
from quantflow_async.records import STRATEGY_STATUSES, Strategy
from quantflow_async.store.column_types import utc_now
from quantflow_async.store.driver_errors import translated_errors
from quantflow_async.store.engine import write_transaction
from quantflow_async.store.repositories._common import (
    UNSET,
    Repository,
    _Unset,
    fetch_all,
    fetch_one,
    insert_returning,
    json_document,
    optional_json_document,
    write_returning,
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


class StrategyRepository(Repository):
    """Create, read, update and delete strategies. Names are unique."""

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
        row = await insert_returning(
            self._engine,
            insert(strategies).values(values).returning(strategies),
            f"creating strategy {values['name']!r}",
            row_error=_name_taken(values["name"]),
        )
        return _record(row)

    async def get(self, strategy_id: int) -> Strategy:
        strategy_id = to_id(strategy_id, "strategy_id")
        return await self._one(strategies.c.id == strategy_id, NotFound("strategy", strategy_id))

    async def get_by_name(self, name: str) -> Strategy:
        name = to_label(name, "name", MAX_NAME_LENGTH)
        return await self._one(strategies.c.name == name, NotFound("strategy", name, field="name"))

    async def _one(self, condition: Any, missing: NotFound) -> Strategy:
        row = await fetch_one(
            self._engine,
            select(strategies).where(condition),
            f"reading {missing.entity} {missing.key!r}",
        )
        if row is None:
            raise missing
        return _record(row)

    async def list(self, *, status: str | None = None) -> list[Strategy]:
        """All strategies, or those with `status`, oldest first."""
        query = select(strategies).order_by(strategies.c.id)
        if status is not None:
            query = query.where(strategies.c.status == _status(status))
        return [_record(row) for row in await fetch_all(self._engine, query, "listing strategies")]

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
        row = await write_returning(
            self._engine,
            statement,
            f"updating strategy {strategy_id}",
            row_error=_name_taken(values.get("name")),
        )
        if row is None:
            raise NotFound("strategy", strategy_id)
        return _record(row)

    async def delete(self, strategy_id: int) -> None:
        """Delete a strategy that has no backtests and no trades; otherwise raise Conflict.

        The strategy's row is locked first (on PostgreSQL), so a backtest or trade being added
        at the same moment either commits before the check, which then sees it, or waits and
        finds the strategy gone. If one slips in anyway, its foreign key refuses the delete,
        and that is reported as the same Conflict.
        """
        strategy_id = to_id(strategy_id, "strategy_id")
        with translated_errors(
            f"deleting strategy {strategy_id}", row_error=lambda exc: _gained_owners(strategy_id)
        ):
            async with write_transaction(self._engine) as conn:
                found = await conn.scalar(
                    select(strategies.c.id).where(strategies.c.id == strategy_id).with_for_update()
                )
                if found is None:
                    raise NotFound("strategy", strategy_id)
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
                await conn.execute(delete(strategies).where(strategies.c.id == strategy_id))


def _name_taken(name: object) -> Callable[[BaseException], Conflict]:
    return lambda exc: Conflict(f"a strategy named {name!r} already exists")


def _gained_owners(strategy_id: int) -> Conflict:
    return Conflict(
        f"strategy {strategy_id} gained backtests or trades while it was being deleted; "
        "delete those first"
    )
