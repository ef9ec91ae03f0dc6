"""Sweeps: the durable record of a study and the jobs (backtests) that belong to it.

A sweep and its pending backtests are stored in one transaction, so a sweep is never left
half-stored. Jobs that did not complete are replaced in one transaction too (`store_jobs`):
the old rows go with their fills, new pending ones take their place. Counts and rankings
are aggregated in SQL, over the (sweep_id, status) index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Float, Row, case, cast, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from quantflow_async.errors import Conflict, InvalidValue, NotFound
from quantflow_async.records import Backtest
from quantflow_async.store.column_types import utc_now
from quantflow_async.store.driver_errors import translated_errors
from quantflow_async.store.engine import read_transaction, write_transaction
from quantflow_async.store.repositories._common import (
    Repository,
    fetch_all,
    json_document,
)
from quantflow_async.store.schema import backtests, sweeps
from quantflow_async.sweep_records import (
    SWEEP_KINDS,
    SWEEP_STATUSES,
    Sweep,
    SweepStatus,
    SweepSummary,
)
from quantflow_async.validation import to_choice, to_decimal, to_id, to_label, to_utc

METRIC_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
"""A metric a ranking may name: a plain key of the metrics document."""
FINISHED: Final = frozenset({"completed", "interrupted"})


class JobRow:
    """A pending backtest to store for a sweep: its job key, name, period, capital and config."""

    __slots__ = ("config", "end_date", "initial_capital", "job_key", "name", "start_date")

    def __init__(
        self,
        *,
        job_key: str,
        name: str,
        start_date: datetime,
        end_date: datetime,
        initial_capital: Decimal | float | int,
        config: Mapping[str, Any],
    ) -> None:
        self.job_key = to_label(job_key, "job_key", 64)
        self.name = to_label(name, "name", 200)
        self.start_date = to_utc(start_date, "start_date")
        self.end_date = to_utc(end_date, "end_date")
        if self.start_date >= self.end_date:
            raise InvalidValue("end_date", f"must be after start_date, got {self.end_date}")
        self.initial_capital = to_decimal(initial_capital, "initial_capital")
        if self.initial_capital <= 0:
            raise InvalidValue("initial_capital", f"must be > 0, got {self.initial_capital}")
        self.config = json_document(config, "config")

    def values(self, strategy_id: int, sweep_id: int) -> dict[str, Any]:
        return {
            "strategy_id": strategy_id,
            "sweep_id": sweep_id,
            "job_key": self.job_key,
            "name": self.name,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "initial_capital": self.initial_capital,
            "config": self.config,
        }


def _record(row: Row[Any]) -> Sweep:
    return Sweep(**row._mapping)


def _json_value(value: object, field: str) -> Any:
    """A JSON value of any kind (a dict, a list, ...), checked as the store checks a document."""
    return json_document({field: value}, field)[field]


def metric_value(metric: str, dialect: str) -> ColumnElement[float]:
    """SQL for a backtest's `metric` as a float: NULL where it is missing or null. A value too
    large for JSON is stored as its repr ("1.2e+17"), which the cast reads back as a number."""
    if not isinstance(metric, str) or not METRIC_NAME.fullmatch(metric):
        raise InvalidValue("metric", f"expected a metric name such as 'sharpe', got {metric!r}")
    if dialect == "postgresql":
        return cast(backtests.c.metrics.op("->>")(metric), Float)
    return cast(func.json_extract(backtests.c.metrics, f'$."{metric}"'), Float)


class SweepRepository(Repository):
    """Sweeps, their jobs, and the reads of `quantflow sweeps list|show`."""

    async def create(
        self,
        *,
        strategy_id: int,
        strategy: str,
        kind: str = "grid",
        space: Any,
        constraints: str | None = None,
        options: Mapping[str, Any],
        datasets: Sequence[Mapping[str, Any]],
        name: str | None = None,
        jobs: Sequence[JobRow] = (),
    ) -> tuple[Sweep, list[int]]:
        """A new running sweep and one pending backtest per job, in one transaction; the sweep
        and the backtests' ids in job order. A job key given twice raises InvalidValue."""
        strategy_id = to_id(strategy_id, "strategy_id")
        _check_unique(jobs)
        values = {
            "strategy_id": strategy_id,
            "strategy": to_label(strategy, "strategy", 1000),
            "kind": to_choice(kind, "kind", SWEEP_KINDS),
            "name": None if name is None else to_label(name, "name", 200),
            "space": _json_value(space, "space"),
            "constraints": None if constraints is None else str(constraints),
            "options": json_document(options, "options"),
            "datasets": _json_value(list(datasets), "datasets"),
        }
        with translated_errors(
            "creating a sweep", row_error=lambda exc: NotFound("strategy", strategy_id)
        ):
            async with write_transaction(self._engine) as conn:
                row = (await conn.execute(insert(sweeps).values(values).returning(sweeps))).one()
                ids = await _insert_jobs(conn, strategy_id, row.id, jobs)
        return _record(row), ids

    async def store_jobs(self, sweep_id: int, jobs: Sequence[JobRow]) -> list[int]:
        """Store `jobs` as pending backtests of the sweep, in one transaction, replacing any
        backtest of the same job key that did not complete (deleted with its fills); the new
        ids in job order. The sweep is running again. A job that completed raises Conflict:
        it is never run again."""
        sweep_id = to_id(sweep_id, "sweep_id")
        _check_unique(jobs)
        keys = [job.job_key for job in jobs]
        with translated_errors(f"storing the jobs of sweep {sweep_id}"):
            async with write_transaction(self._engine) as conn:
                strategy_id = await conn.scalar(
                    select(sweeps.c.strategy_id).where(sweeps.c.id == sweep_id)
                )
                if strategy_id is None:
                    raise NotFound("sweep", sweep_id)
                completed = await conn.scalar(
                    select(func.count()).where(
                        backtests.c.sweep_id == sweep_id,
                        backtests.c.job_key.in_(keys),
                        backtests.c.status == "completed",
                    )
                )
                if completed:
                    raise Conflict(
                        f"sweep {sweep_id}: {completed} of these jobs completed already; "
                        "a completed job is never run again"
                    )
                await conn.execute(
                    delete(backtests).where(
                        backtests.c.sweep_id == sweep_id, backtests.c.job_key.in_(keys)
                    )
                )
                ids = await _insert_jobs(conn, strategy_id, sweep_id, jobs)
                await conn.execute(_status_update(sweep_id, "running"))
        return ids

    async def get(self, sweep_id: int) -> Sweep:
        return _record(await self._row_by_id(sweeps, sweep_id, "sweep"))

    async def counts(self, sweep_id: int) -> dict[str, int]:
        """How many of the sweep's backtests are in each status."""
        sweep_id = to_id(sweep_id, "sweep_id")
        query = (
            select(backtests.c.status, func.count().label("n"))
            .where(backtests.c.sweep_id == sweep_id)
            .group_by(backtests.c.status)
        )
        rows = await fetch_all(self._engine, query, f"counting the backtests of sweep {sweep_id}")
        return {row.status: row.n for row in rows}

    async def jobs(self, sweep_id: int) -> dict[str, tuple[int, str]]:
        """The sweep's backtests by job key: (backtest id, status)."""
        sweep_id = to_id(sweep_id, "sweep_id")
        query = select(backtests.c.job_key, backtests.c.id, backtests.c.status).where(
            backtests.c.sweep_id == sweep_id
        )
        rows = await fetch_all(self._engine, query, f"reading the jobs of sweep {sweep_id}")
        return {row.job_key: (row.id, row.status) for row in rows}

    async def best(
        self, sweep_id: int, metric: str, *, limit: int = 10, highest: bool = True
    ) -> list[Backtest]:
        """The sweep's completed backtests with the highest `metric` (lowest if not
        `highest`), `limit` of them; those without a value for it come last."""
        sweep_id = to_id(sweep_id, "sweep_id")
        value = metric_value(metric, self._engine.dialect.name)
        order = value.desc() if highest else value.asc()
        query = (
            select(backtests)
            .where(backtests.c.sweep_id == sweep_id, backtests.c.status == "completed")
            .order_by(case((value.is_(None), 1), else_=0), order, backtests.c.id)
            .limit(to_id(limit, "limit"))
        )
        rows = await fetch_all(self._engine, query, f"ranking the backtests of sweep {sweep_id}")
        return [Backtest(**row._mapping) for row in rows]

    async def failures(self, sweep_id: int, *, limit: int = 3) -> list[Backtest]:
        """The sweep's first `limit` failed backtests, by id."""
        sweep_id = to_id(sweep_id, "sweep_id")
        query = (
            select(backtests)
            .where(backtests.c.sweep_id == sweep_id, backtests.c.status == "failed")
            .order_by(backtests.c.id)
            .limit(to_id(limit, "limit"))
        )
        rows = await fetch_all(self._engine, query, f"reading the failures of sweep {sweep_id}")
        return [Backtest(**row._mapping) for row in rows]

    async def set_status(self, sweep_id: int, status: SweepStatus | str) -> Sweep:
        """Mark the sweep running, completed or interrupted (the last two set `finished_at`)."""
        sweep_id = to_id(sweep_id, "sweep_id")
        status = to_choice(status, "status", SWEEP_STATUSES)
        with translated_errors(f"setting the status of sweep {sweep_id}"):
            async with write_transaction(self._engine) as conn:
                row = (
                    await conn.execute(_status_update(sweep_id, status).returning(sweeps))
                ).one_or_none()
        if row is None:
            raise NotFound("sweep", sweep_id)
        return _record(row)

    async def delete(self, sweep_id: int) -> int:
        """Delete the sweep with its backtests and their fills, in one transaction; how many
        backtests went with it."""
        sweep_id = to_id(sweep_id, "sweep_id")
        with translated_errors(
            f"deleting sweep {sweep_id}",
            row_error=lambda exc: Conflict(
                f"sweep {sweep_id} has a backtest that orders refer to; it cannot be deleted"
            ),
        ):
            async with write_transaction(self._engine) as conn:
                count = await conn.scalar(
                    select(func.count()).where(backtests.c.sweep_id == sweep_id)
                )
                gone = await conn.execute(
                    delete(sweeps).where(sweeps.c.id == sweep_id).returning(sweeps.c.id)
                )
                if gone.one_or_none() is None:
                    raise NotFound("sweep", sweep_id)
        return int(count or 0)

    # Last in the class: below it, `list` in an annotation would mean this method.
    async def list(self) -> list[SweepSummary]:
        """Every sweep, oldest first, with its backtests counted by status."""
        counted = (
            select(backtests.c.sweep_id, backtests.c.status, func.count().label("n"))
            .where(backtests.c.sweep_id.is_not(None))
            .group_by(backtests.c.sweep_id, backtests.c.status)
        )
        with translated_errors("listing sweeps"):
            async with read_transaction(self._engine) as conn:
                found = (await conn.execute(select(sweeps).order_by(sweeps.c.id))).all()
                counts: dict[int, dict[str, int]] = {}
                for row in (await conn.execute(counted)).all():
                    counts.setdefault(row.sweep_id, {})[row.status] = row.n
        return [SweepSummary(_record(row), counts.get(row.id, {})) for row in found]


def _status_update(sweep_id: int, status: str) -> Any:
    finished = utc_now() if status in FINISHED else None
    return (
        update(sweeps)
        .where(sweeps.c.id == sweep_id)
        .values(status=status, updated_at=utc_now(), finished_at=finished)
    )


def _check_unique(jobs: Sequence[JobRow]) -> None:
    seen: set[str] = set()
    for job in jobs:
        if job.job_key in seen:
            raise InvalidValue(
                "jobs", f"the same job twice ({job.name}): give each config once per data set"
            )
        seen.add(job.job_key)


async def _insert_jobs(
    conn: AsyncConnection, strategy_id: int, sweep_id: int, jobs: Sequence[JobRow]
) -> list[int]:
    if not jobs:
        return []
    rows = [job.values(strategy_id, sweep_id) for job in jobs]
    statement = insert(backtests).returning(backtests.c.id, sort_by_parameter_order=True)
    return list((await conn.execute(statement, rows)).scalars())
