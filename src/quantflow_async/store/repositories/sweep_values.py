"""A sweep's backtests as a study reads them: each one's parameters and one statistic, picked
out of the JSON documents in SQL, so that a heatmap of 100,000 backtests reads three values
a row instead of three documents.

A search rebuilds its study from these rows (every backtest, in the order stored); a heatmap
aggregates them (the completed ones, two parameters).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from quantflow_async.store.repositories._common import fetch_all, fetch_one
from quantflow_async.store.repositories.sweeps import metric_value
from quantflow_async.store.schema import backtests
from quantflow_async.validation import to_id


@dataclass(frozen=True, slots=True)
class BacktestValues:
    """One backtest of a sweep: its id, status, parameters (all, or those asked for; None
    where it has none of that name) and the statistic asked for (None without a value)."""

    backtest_id: int
    status: str
    parameters: Mapping[str, Any]
    value: float | None


async def parameter_names(engine: AsyncEngine, sweep_id: int) -> list[str]:
    """The parameters of the sweep's first backtest, sorted; none for a sweep without one."""
    sweep_id = to_id(sweep_id, "sweep_id")
    query = (
        select(backtests.c.config["parameters"])
        .where(backtests.c.sweep_id == sweep_id)
        .order_by(backtests.c.id)
        .limit(1)
    )
    row = await fetch_one(engine, query, f"reading the parameters of sweep {sweep_id}")
    parameters = row[0] if row is not None else None
    return sorted(parameters) if isinstance(parameters, Mapping) else []


async def sweep_values(
    engine: AsyncEngine,
    sweep_id: int,
    metric: str,
    *,
    parameters: Sequence[str] | None = None,
    status: str | None = None,
) -> list[BacktestValues]:
    """The sweep's backtests (in `status` only, if given), oldest first, each with its
    `parameters` (all of them if None) and its `metric` as a number."""
    sweep_id = to_id(sweep_id, "sweep_id")
    config = backtests.c.config["parameters"]
    picked = [config] if parameters is None else [_parameter(name, engine) for name in parameters]
    value = metric_value(metric, engine.dialect.name)
    query = (
        select(backtests.c.id, backtests.c.status, value, *picked)
        .where(backtests.c.sweep_id == sweep_id)
        .order_by(backtests.c.id)
    )
    if status is not None:
        query = query.where(backtests.c.status == status)
    found = await fetch_all(engine, query, f"reading the backtests of sweep {sweep_id}")
    rows: list[tuple[Any, ...]] = [tuple(row) for row in found]
    if parameters is None:
        return [BacktestValues(row[0], row[1], dict(row[3] or {}), row[2]) for row in rows]
    names = list(parameters)
    read = _sqlite_value if engine.dialect.name == "sqlite" else _scalar
    return [
        BacktestValues(
            row[0], row[1], {n: read(v) for n, v in zip(names, row[3:], strict=True)}, row[2]
        )
        for row in rows
    ]


def _parameter(name: str, engine: AsyncEngine) -> ColumnElement[Any]:
    """SQL for one parameter's value. A JSON document each, parsed in Python, takes longer
    than the query on 100,000 rows: numbers come as numbers on SQLite, any other value (and
    every value on PostgreSQL) as its JSON text, read back by `_sqlite_value`/`_scalar`."""
    if engine.dialect.name != "sqlite":
        return cast(backtests.c.config["parameters"][name], Text)
    path = f'$.parameters."{name}"'
    kind = func.json_type(backtests.c.config, path)
    value = func.json_extract(backtests.c.config, path)
    return case(
        (kind.in_(["integer", "real"]), value),
        (kind == "text", func.json_quote(value)),
        else_=kind,  # true, false, null; or NULL for a parameter the backtest does not have
    )


def _sqlite_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _scalar(text: str | None) -> Any:
    """A JSON value from its text: a number without the JSON parser."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return json.loads(text)
