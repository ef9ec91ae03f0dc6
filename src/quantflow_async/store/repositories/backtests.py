"""Backtests: runs of a strategy over a period, with a status lifecycle and stored results."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Column, Row, Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from quantflow_async.errors import Conflict, InvalidTransition, InvalidValue, NotFound
from quantflow_async.records import BACKTEST_STATUSES, Backtest, DecimalInput
from quantflow_async.store.column_types import utc_now
from quantflow_async.store.driver_errors import translated_errors
from quantflow_async.store.engine import read_transaction, write_transaction
from quantflow_async.store.repositories._common import (
    UNSET,
    Repository,
    _Unset,
    fetch_all,
    insert_returning,
    json_document,
    json_value,
    write_returning,
)
from quantflow_async.store.schema import backtests, sweeps, trades
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


@dataclass(frozen=True, slots=True)
class Selection:
    """Which backtests a bulk delete takes: these ids, or those of a sweep and/or in a status."""

    ids: tuple[int, ...] = ()
    sweep_id: int | None = None
    status: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        if self.ids:
            if self.sweep_id is not None or self.status is not None:
                raise InvalidValue("ids", "give backtest ids, or a sweep and/or a status, not both")
            return [backtests.c.id.in_([to_id(i, "backtest_id") for i in self.ids])]
        clauses: list[ColumnElement[bool]] = []
        if self.sweep_id is not None:
            clauses.append(backtests.c.sweep_id == to_id(self.sweep_id, "sweep_id"))
        if self.status is not None:
            clauses.append(backtests.c.status == _status(self.status))
        if not clauses:
            raise InvalidValue("selection", "name backtest ids, a sweep or a status")
        return clauses


@dataclass(frozen=True, slots=True)
class Deleted:
    """How many backtests a bulk delete took, and how many fills went with them."""

    backtests: int
    fills: int


def _status(value: object) -> str:
    return to_choice(value, "status", BACKTEST_STATUSES)


def _record(row: Row[Any]) -> Backtest:
    return Backtest(**row._mapping)


def _allowed_from(status: str) -> list[str]:
    """The statuses a backtest may move to `status` from."""
    return [old for old, new in TRANSITIONS.items() if status in new]


def _refusal(backtest_id: int, current: str | None, status: str) -> NotFound | InvalidTransition:
    """Why a backtest whose status is `current` (None: there is none) did not move to `status`."""
    if current is None:
        return NotFound("backtest", backtest_id)
    return InvalidTransition(backtest_id, current, status)


_IDS_PER_STATEMENT: Final = 1000
"""Ids bound into one statement of a bulk move: far below every driver's parameter limit."""


def _slices(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        yield ids[start : start + _IDS_PER_STATEMENT]


def _outcome(
    metrics: Mapping[str, Any] | None | _Unset, results: Mapping[str, Any] | None | _Unset
) -> dict[str, Any]:
    """The columns a run's outcome sets: `updated_at`, and whichever document is given."""
    values: dict[str, Any] = {"updated_at": utc_now()}
    if metrics is not UNSET:
        values["metrics"] = json_value(metrics, "metrics")
    if results is not UNSET:
        values["results"] = json_value(results, "results")
    return values


class BacktestRepository(Repository):
    """Backtests of a strategy and their lifecycle."""

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
        return _record(await self._row_by_id(backtests, backtest_id, "backtest"))

    async def list(
        self,
        *,
        strategy_id: int | None = None,
        status: str | None = None,
        sweep_id: int | None = None,
    ) -> list[Backtest]:
        """Backtests, optionally of one strategy, in one status and/or of one sweep, oldest
        first."""
        query = select(backtests).order_by(backtests.c.id)
        if sweep_id is not None:
            query = query.where(backtests.c.sweep_id == to_id(sweep_id, "sweep_id"))
        if strategy_id is not None:
            query = query.where(backtests.c.strategy_id == to_id(strategy_id, "strategy_id"))
        if status is not None:
            query = query.where(backtests.c.status == _status(status))
        return [_record(row) for row in await fetch_all(self._engine, query, "listing backtests")]

    async def set_status(
        self,
        backtest_id: int,
        status: str,
        *,
        metrics: Mapping[str, Any] | None | _Unset = UNSET,
        results: Mapping[str, Any] | None | _Unset = UNSET,
    ) -> Backtest:
        """Move a backtest along its lifecycle; any other move raises InvalidTransition.

        `metrics` and `results`, when given, are stored in the same statement (as
        `save_results` stores them), so a run's outcome and its status are one change.
        """
        return _record(await self._move(backtest_id, status, metrics, results, backtests))

    async def complete(
        self, backtest_id: int, *, metrics: Mapping[str, Any], results: Mapping[str, Any]
    ) -> None:
        """`set_status(backtest_id, "completed", metrics=..., results=...)` without reading
        the backtest back: for a sweep storing runs by the hundred, where parsing each
        stored results document again costs more than storing it."""
        await self._move(backtest_id, "completed", metrics, results, backtests.c.id)

    async def set_status_many(self, backtest_ids: Iterable[int], status: str) -> None:
        """`set_status(backtest_id, status)` for each of `backtest_ids`, in one transaction,
        without reading them back. A backtest that cannot move is left as it is, the others
        move, and then the first such one raises NotFound or InvalidTransition."""
        status = _status(status)
        given = [to_id(i, "backtest_id") for i in backtest_ids]
        ids = list(dict.fromkeys(given))
        if len(ids) < len(given):
            raise InvalidValue("backtest_ids", "name each backtest once")
        if not ids:
            return  # no transaction: on SQLite it would take the write lock for nothing
        allowed_from = _allowed_from(status)
        moved: set[int] = set()
        left: dict[int, str] = {}
        with translated_errors(f"setting the status of {len(ids)} backtests to {status}"):
            async with write_transaction(self._engine) as conn:
                # An UPDATE, as set_status's: it never waits for the lock that a fill being
                # inserted holds on its backtest (a SELECT ... FOR UPDATE would, and could
                # deadlock with the writer). Slices keep each statement's parameters few.
                for some in _slices(ids):
                    statement = (
                        update(backtests)
                        .where(backtests.c.id.in_(some), backtests.c.status.in_(allowed_from))
                        .values(status=status, updated_at=utc_now())
                        .returning(backtests.c.id)
                    )
                    moved.update((await conn.execute(statement)).scalars())
                for some in _slices([i for i in ids if i not in moved]):
                    found = select(backtests.c.id, backtests.c.status).where(
                        backtests.c.id.in_(some)
                    )
                    left.update((row[0], row[1]) for row in await conn.execute(found))
        for backtest_id in ids:
            if backtest_id not in moved:
                raise _refusal(backtest_id, left.get(backtest_id), status)

    async def _move(
        self,
        backtest_id: int,
        status: str,
        metrics: Mapping[str, Any] | None | _Unset,
        results: Mapping[str, Any] | None | _Unset,
        returned: Table | Column[Any],
    ) -> Row[Any]:
        backtest_id = to_id(backtest_id, "backtest_id")
        status = _status(status)
        allowed_from = _allowed_from(status)
        values = {"status": status, **_outcome(metrics, results)}
        statement = (
            update(backtests)
            .where(backtests.c.id == backtest_id, backtests.c.status.in_(allowed_from))
            .values(values)
            .returning(returned)
        )
        with translated_errors(f"setting the status of backtest {backtest_id}"):
            async with write_transaction(self._engine) as conn:
                row: Row[Any] | None = (await conn.execute(statement)).one_or_none()
                if row is None:
                    current = await conn.scalar(
                        select(backtests.c.status).where(backtests.c.id == backtest_id)
                    )
        if row is not None:
            return row
        raise _refusal(backtest_id, current, status)

    async def save_results(
        self,
        backtest_id: int,
        *,
        metrics: Mapping[str, Any] | None | _Unset = UNSET,
        results: Mapping[str, Any] | None | _Unset = UNSET,
    ) -> Backtest:
        """Store the performance metrics and/or the detailed results (JSON objects)."""
        backtest_id = to_id(backtest_id, "backtest_id")
        values = _outcome(metrics, results)
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

    async def count_selected(self, selection: Selection) -> Deleted:
        """What `delete_selected(selection)` would delete now, counted (NotFound as it would)."""
        with translated_errors("counting backtests to delete"):
            async with read_transaction(self._engine) as conn:
                return await _counted(conn, selection)

    async def delete_selected(self, selection: Selection) -> Deleted:
        """Delete the selected backtests with their fills, in one transaction.

        An id that is not stored, or a sweep that is not, raises NotFound and deletes
        nothing; a backtest that orders of the journal refer to raises Conflict.
        """
        with translated_errors(
            "deleting backtests",
            row_error=lambda exc: Conflict(
                "a backtest to delete has orders in the journal that refer to it; "
                "it cannot be deleted"
            ),
        ):
            async with write_transaction(self._engine) as conn:
                counted = await _counted(conn, selection)
                await conn.execute(delete(backtests).where(*selection.where()))
        return counted


async def _counted(conn: AsyncConnection, selection: Selection) -> Deleted:
    where = selection.where()
    if selection.ids:
        found = set((await conn.execute(select(backtests.c.id).where(*where))).scalars())
        missing = [i for i in selection.ids if i not in found]
        if missing:
            raise NotFound("backtest", missing[0])
    if selection.sweep_id is not None:
        known = await conn.scalar(select(sweeps.c.id).where(sweeps.c.id == selection.sweep_id))
        if known is None:
            raise NotFound("sweep", selection.sweep_id)
    chosen = select(backtests.c.id).where(*where)
    count = await conn.scalar(select(func.count()).select_from(chosen.subquery()))
    fills = await conn.scalar(
        select(func.count()).select_from(trades).where(trades.c.backtest_id.in_(chosen))
    )
    return Deleted(int(count or 0), int(fills or 0))
