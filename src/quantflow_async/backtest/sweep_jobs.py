"""A sweep's jobs: the configs of a grid, the data sets, and one pending backtest per pair.

`run_sweep` (sweep.py) and `run_sweep_on_cluster` (cluster.py) both start here, so both
check and store their jobs the same way, and neither leaves a backtest pending if storing
them stops part way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from quantflow_async.backtest.bars import Bars, read_bars
from quantflow_async.backtest.conversion import RunSpec
from quantflow_async.backtest.runner import create_backtest, mark_cancelled
from quantflow_async.backtest.strategy import Strategy
from quantflow_async.backtest.worker import Job
from quantflow_async.database import Database
from quantflow_async.errors import BarsError, StrategyConfigError
from quantflow_async.records import Backtest

DataSource = Bars | str | os.PathLike[str]


def expand_grid(
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The configs of a grid: every combination of a mapping of lists (in key order), or a
    list of configs as given."""
    if isinstance(grid, Mapping):
        keys = list(grid)
        return [
            dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())
        ]
    return [dict(config) for config in grid]


async def create_sweep_backtests(
    db: Database,
    strategy: str | type[Strategy],
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    datasets: Mapping[str, Bars],
    *,
    strategy_id: int,
    name: str | None,
    **settings: Any,
) -> list[Job]:
    """One pending backtest per data set and config, in job order (data set by data set,
    configs in grid order). Every config is checked first (StrategyConfigError), and every
    data set (BarsError for one bar: a stored backtest's last bar comes after its first),
    so a bad one stores nothing. `settings` are RunSpec's: cash, commission, slippage and
    so on. If storing stops part way (the store fails, a cancellation, a timeout, Ctrl-C),
    the backtests stored so far are marked cancelled before it raises."""
    configs = expand_grid(grid)
    if not configs:
        raise StrategyConfigError("grid", "no config to run")
    for bars in datasets.values():
        if len(bars) < 2:
            reason = "one bar: a stored backtest needs a last bar after its first"
            raise BarsError(bars.source, None, None, reason)
    specs = [
        (key, RunSpec.of(strategy, config, symbol=key, **settings))
        for key in datasets
        for config in configs
    ]
    jobs: list[Job] = []
    try:
        for key, spec in specs:
            label = spec.default_name() if name is None else f"{name} {spec.default_name()}"
            creating = asyncio.ensure_future(
                create_backtest(db, spec, datasets[key], strategy_id=strategy_id, name=label[:200])
            )
            try:
                backtest = await asyncio.shield(creating)
            except BaseException:
                # However the wait stopped (asyncio's own Task.cancel() from a timeout or
                # Ctrl-C passes through anyio's shields), the row may be committed already:
                # its creation is waited for, and its backtest is marked cancelled too.
                with contextlib.suppress(Exception):  # the store failed: nothing stored
                    jobs.append(Job((await _finished(creating)).id, strategy_id, spec, key))
                raise
            jobs.append(Job(backtest.id, strategy_id, spec, key))
    except BaseException:
        await mark_cancelled(db, [job.backtest_id for job in jobs])
        raise
    return jobs


async def _finished(creating: asyncio.Future[Backtest]) -> Backtest:
    """What `creating` gives, waited for however often the waiting task is cancelled."""
    while not creating.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(creating)
    return creating.result()


def load_datasets(data: DataSource | Mapping[str, DataSource], symbol: str) -> dict[str, Bars]:
    """The sweep's data sets by symbol: bars as given, files read now (BarsError on a bad one)."""
    sources: Mapping[str, DataSource] = data if isinstance(data, Mapping) else {symbol: data}
    if not sources:
        raise StrategyConfigError("data", "no data set given")
    return {
        key: source if isinstance(source, Bars) else read_bars(Path(source))
        for key, source in sources.items()
    }
