"""A search as a stored sweep: the sweep's space is a search space, each trial a job.

    result = await run_search(db, "sma_cross", {"fast": {"int": [2, 50]},
                              "slow": {"int": [10, 200], "step": 5}}, "goog.csv",
                              strategy_id=strategy.id, trials=100, maximize="sharpe", seed=1)

The sweep is stored first (kind "search"; its space holds the search's settings too), then
each batch of trials is stored as pending backtests of it and run in the worker processes,
`workers` at once, as a grid sweep's jobs are. `resume=ID` rebuilds the study from the
sweep's stored backtests (backtest/search.py), runs again those that did not finish and goes
on to `trials`: the database is the only store of the study.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.constraints import Constraint, keeps, parse_constraint
from quantflow_async.backtest.conversion import FILL_CHUNK
from quantflow_async.backtest.objective import Objective
from quantflow_async.backtest.search import (
    SearchOutcome,
    TrialOutcome,
    TrialRecord,
    TrialState,
    check_search,
    drive_search,
)
from quantflow_async.backtest.search_space import SearchSpace, parse_space
from quantflow_async.backtest.spec import RunOptions, RunSpec, split_symbol
from quantflow_async.backtest.strategies import strategy_reference
from quantflow_async.backtest.strategy import Strategy
from quantflow_async.backtest.sweep import MAX_WORKER_RESTARTS, check_running
from quantflow_async.backtest.sweep_jobs import (
    DataSource,
    check_resumable,
    load_datasets,
    plan_sweep,
)
from quantflow_async.backtest.sweep_runner import SweepRunner, sweep_runner
from quantflow_async.backtest.sweep_store import finish_sweep, store_more_jobs
from quantflow_async.database import Database
from quantflow_async.errors import InvalidValue, StrategyConfigError
from quantflow_async.store.repositories.sweep_values import sweep_values
from quantflow_async.sweep_records import Sweep

if TYPE_CHECKING:
    from typing_extensions import Unpack

PROBES: Final = 32
"""Configs drawn at random from a space to find one the strategy takes, before a search."""
_STATES: Final[dict[str, TrialState]] = {"completed": "completed", "failed": "failed"}
"""A stored backtest's status as a trial's state; any other status is unfinished."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What a search did: its sweep, every trial (those of earlier runs of a resumed search
    too), the fills this run stored and how long it took."""

    sweep_id: int
    search: SearchOutcome
    fills_stored: int
    seconds: float
    workers: int

    @property
    def best(self) -> TrialRecord | None:
        return self.search.best


def search_settings(
    space: SearchSpace, objective: Objective, *, method: str, trials: int, seed: int | None,
    batch: int,
) -> dict[str, Any]:  # fmt: skip
    """What the sweep's `space` column holds for a search: the space and its settings."""
    return {
        "parameters": space.document(),
        "search": method,
        "trials": trials,
        "seed": seed,
        objective.direction: objective.metric,
        "batch": batch,
    }


async def run_search(
    db: Database,
    strategy: str | type[Strategy],
    space: SearchSpace | Mapping[str, Any] | str,
    data: DataSource | Mapping[str, DataSource],
    *,
    strategy_id: int,
    trials: int,
    maximize: str | None = None,
    minimize: str | None = None,
    method: str = "tpe",
    seed: int | None = None,
    workers: int = 2,
    constraint: Constraint | str | None = None,
    name: str | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    chunk_size: int = FILL_CHUNK,
    start_method: str = "spawn",
    max_worker_restarts: int = MAX_WORKER_RESTARTS,
    resume: int | None = None,
    **options: Unpack[RunOptions],
) -> SearchResult:
    """Search `space` for the config with the best `maximize` (or `minimize`) statistic of
    `strategy` over `data` (one data set): `trials` backtests, each stored, `workers` at once.

    `space` is a SearchSpace, or its JSON document (backtest/search_space.py). `method` is
    "tpe" or "random"; `seed` makes the search repeatable (with the same `workers`).
    `constraint` leaves out the configs it is false for (counted, not run). `on_trial` is
    called with each trial as it ends. `options` are the run's (RunOptions: cash, commission
    and the rest; `symbol` names `data` when it is one set of bars or one file). Every
    argument is checked before anything is stored.
    `resume=ID` goes on with sweep ID, a search run with the same arguments (InvalidValue
    names one that differs, or a data set whose content changed): the trials it holds are
    kept, those that did not finish run again, and it runs on to `trials` (which may be
    more than before). Ctrl-C or a cancellation marks the sweep interrupted, its unfinished
    trials cancelled.
    """
    parsed = space if isinstance(space, SearchSpace) else parse_space(space)
    objective = _objective(maximize, minimize)
    check_running(workers, chunk_size, start_method, max_worker_restarts)
    check_search(
        parsed, trials=trials, method=method, seed=seed, batch=workers, constraint=constraint
    )
    if not isinstance(strategy, str):
        strategy_reference(strategy)  # a class the worker processes cannot import: refused now
    symbol, settings = split_symbol(options)
    datasets = load_datasets(data, symbol)
    if len(datasets) != 1:
        raise StrategyConfigError(
            "data", f"a search runs on one data set, got {len(datasets)}: search each alone"
        )
    (key,) = datasets
    taken = probe_strategy(strategy, parsed, constraint, dict(settings, symbol=key))
    # The plan of one config gives the options and the data sets as the sweep's row keeps them.
    plan = plan_sweep(strategy, [taken], datasets, None, settings)
    stored_settings = search_settings(
        parsed, objective, method=method, trials=trials, seed=seed, batch=workers
    )
    history: list[TrialRecord] = []
    if resume is None:
        sweep, _ = await db.sweeps.create(
            strategy_id=strategy_id, strategy=plan.strategy, kind="search",
            space=stored_settings, constraints=_text(constraint),
            options=plan.options, datasets=plan.dataset_documents(), name=name,
        )  # fmt: skip
    else:
        sweep = await db.sweeps.get(resume)
        check_resumable(plan, sweep, strategy_id)
        _check_same_search(sweep, stored_settings, constraint)
        history = await stored_trials(db, sweep.id, parsed, objective)
    started = time.perf_counter()
    try:
        async with (
            db.writer() as writer,
            sweep_runner(
                db, sweep.id, datasets, writer=writer, workers=workers, chunk_size=chunk_size,
                start_method=start_method, max_worker_restarts=max_worker_restarts,
            ) as runner,
        ):  # fmt: skip
            trials_runner = _TrialRunner(
                db, sweep.id, strategy, strategy_id, datasets, settings, name, runner
            )
            outcome = await drive_search(
                parsed, trials_runner.run, trials=trials, objective=objective, method=method,
                seed=seed, batch=int(sweep.space.get("batch", workers)), constraint=constraint,
                history=history, on_trial=on_trial,
                refused=lambda config: refusal(strategy, config, dict(settings, symbol=key))
                is not None,
            )  # fmt: skip
    except BaseException:
        with anyio.CancelScope(shield=True):
            if resume is None and not await db.sweeps.counts(sweep.id):
                await db.sweeps.delete(sweep.id)  # it stored no trial: nothing to resume
            else:
                await finish_sweep(db, sweep.id, "interrupted")
        raise
    await finish_sweep(db, sweep.id, "completed")
    seconds = time.perf_counter() - started
    return SearchResult(sweep.id, outcome, runner.fills, seconds, workers)


class _TrialRunner:
    """Runs a batch of trials: stores them as pending backtests of the sweep, runs them in
    the worker processes, and reads back how each ended."""

    def __init__(
        self,
        db: Database,
        sweep_id: int,
        strategy: str | type[Strategy],
        strategy_id: int,
        datasets: Mapping[str, Bars],
        settings: Mapping[str, Any],
        name: str | None,
        runner: SweepRunner,
    ) -> None:
        self.db = db
        self.sweep_id = sweep_id
        self.strategy = strategy
        self.strategy_id = strategy_id
        self.datasets = datasets
        self.settings = settings
        self.name = name
        self.runner = runner

    async def run(self, configs: Sequence[dict[str, Any]]) -> list[TrialOutcome]:
        plan = plan_sweep(self.strategy, configs, self.datasets, None, self.settings)
        jobs = await store_more_jobs(
            self.db, self.sweep_id, plan, strategy_id=self.strategy_id, name=self.name
        )
        await self.runner.run(jobs)
        outcomes = []
        for job in jobs:
            backtest = await self.db.backtests.get(job.backtest_id)
            metrics = backtest.metrics if backtest.status == "completed" else None
            outcomes.append(TrialOutcome(backtest.id, metrics))
        return outcomes


def refusal(
    strategy: str | type[Strategy], config: Mapping[str, Any], settings: Mapping[str, Any]
) -> StrategyConfigError | None:
    """Why the strategy does not take `config` with `settings` (RunSpec's), or None."""
    try:
        RunSpec.of(strategy, dict(config), **settings)
    except StrategyConfigError as exc:
        return exc
    return None


def probe_strategy(
    strategy: str | type[Strategy],
    space: SearchSpace,
    constraint: Constraint | str | None,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """A config of `space` that the strategy takes: the corners first, then configs drawn at
    random (the same every time), those the constraint keeps. The constraint is tried on
    all of them first: one that fails on any (1 / 0, a number where True or False is due)
    is StrategyConfigError before anything is stored, rather than part way through the
    search. If the strategy takes none, the first refusal is raised (StrategyConfigError):
    a parameter it does not have, a value of the wrong type, a bad setting. One it takes
    shows the space can be searched; the configs it refuses along the search (slow <= fast)
    are left out as the constraint's are."""
    check = parse_constraint(constraint) if isinstance(constraint, str) else constraint
    draws = random.Random(0)  # noqa: S311 - a probe, not a secret
    configs = [*space.corners(), *(space.sample(draws) for _ in range(PROBES))]
    if check is not None:
        configs = [config for config in configs if keeps(check, config)]
    first: StrategyConfigError | None = None
    for config in configs:
        if (refused := refusal(strategy, config, settings)) is None:
            return config
        first = first or refused
    if first is not None:
        raise first
    return space.corners()[0]


async def stored_trials(
    db: Database, sweep_id: int, space: SearchSpace, objective: Objective
) -> list[TrialRecord]:
    """The sweep's trials as stored, in the order they were asked (by backtest id)."""
    trials: list[TrialRecord] = []
    for row in await sweep_values(db.engine, sweep_id, objective.metric):
        config = {
            name: space.fixed[name] if name in space.fixed else row.parameters.get(name)
            for name in space.names
        }
        state = _STATES.get(row.status, "unfinished")
        if state == "completed" and row.value is None:
            state = "no_value"
        value = row.value if state == "completed" else None
        trials.append(TrialRecord(len(trials), config, state, value, row.backtest_id))
    return trials


def search_of(sweep: Sweep) -> dict[str, Any]:
    """A stored search's space and settings: the keyword arguments of `run_search` that
    resume it (InvalidValue for a sweep that is not a search)."""
    if sweep.kind != "search":
        raise InvalidValue("sweep", f"sweep {sweep.id} is a grid, not a search")
    stored = dict(sweep.space)
    direction = "maximize" if "maximize" in stored else "minimize"
    return {
        "space": dict(stored["parameters"]),
        "method": stored["search"],
        "trials": stored["trials"],
        "seed": stored["seed"],
        direction: stored[direction],
        "constraint": sweep.constraints,
    }


def _objective(maximize: str | None, minimize: str | None) -> Objective:
    if (maximize is None) == (minimize is None):
        raise StrategyConfigError(
            "maximize", "give one statistic to maximize or one to minimize, e.g. sharpe"
        )
    if maximize is not None:
        return Objective(maximize, "maximize")
    return Objective(str(minimize), "minimize")


def _check_same_search(
    sweep: Sweep, settings: Mapping[str, Any], constraint: Constraint | str | None
) -> None:
    """InvalidValue, one line, unless `sweep` is a search run with these settings (all but
    the number of trials and the batch, which may change) and this constraint (a callable
    is taken on trust where the sweep stored none)."""
    if sweep.kind != "search":
        raise InvalidValue("resume", f"sweep {sweep.id} is a grid; resume it with run_sweep")
    given = "a callable" if callable(constraint) else repr(constraint)
    same = sweep.constraints is None if callable(constraint) else sweep.constraints == constraint
    if not same:
        raise InvalidValue(
            "constraint",
            f"sweep {sweep.id} searched with the constraint {sweep.constraints!r}, not {given}",
        )
    stored = dict(sweep.space)
    for key, value in settings.items():
        if key in ("trials", "batch"):
            continue
        if stored.get(key) != value:
            raise InvalidValue(
                key if key != "parameters" else "space",
                f"sweep {sweep.id} searched with {key}={stored.get(key)!r}, not {value!r}",
            )


def _text(constraint: Constraint | str | None) -> str | None:
    return constraint if isinstance(constraint, str) else None
