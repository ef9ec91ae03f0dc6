"""A sweep's jobs: the configs of a grid, the data sets, and each job's key.

A job is one config over one data set. Its key is a hash of all that decides its outcome:
the strategy's reference, the parameters, the data set's content fingerprint and every run
option of `RunSpec` (cash, commission, symbol, and whatever options it gains), so the key of
a job run again is its key, and a changed option or file makes another job.
`run_sweep` (sweep.py) and `run_sweep_on_cluster` (cluster.py) both plan here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from quantflow_async.backtest.bars import Bars, check_storable, read_bars
from quantflow_async.backtest.constraints import Constraint, split_configs
from quantflow_async.backtest.spec import RunSpec
from quantflow_async.backtest.strategy import Strategy
from quantflow_async.errors import InvalidValue, StrategyConfigError
from quantflow_async.store.repositories.sweeps import JobRow
from quantflow_async.sweep_records import Sweep
from quantflow_async.validation import MAX_JSON_BYTES

DataSource = Bars | str | os.PathLike[str]
Grid = Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]

_SPEC_ONLY: Final = ("strategy", "parameters")
"""RunSpec's fields that are not run options: every other one is, and goes into the key."""
_A_GRID: Final = 'a grid gives each parameter its values, e.g. {"fast": [5, 10], "slow": [20, 50]}'
"""What the errors about an empty grid say a grid looks like."""


def expand_grid(grid: Grid) -> list[dict[str, Any]]:
    """The configs of a grid: every combination of a mapping of lists (in key order), or a
    list of configs as given.

    A grid without a config to run is StrategyConfigError saying why: an empty list, a
    parameter with no value, or a mapping that names no parameter (its one combination
    would run the strategy's defaults: a grid left out by mistake, not a sweep).
    """
    if not isinstance(grid, Mapping):
        configs = [dict(config) for config in grid]  # any iterable, read once
        if not configs:
            raise StrategyConfigError(
                "grid", 'the list of configs is empty; list one at least, e.g. [{"fast": 5}]'
            )
        return configs
    if not grid:
        raise StrategyConfigError(
            "grid", f"{{}} names no parameter, so it would only run the defaults; {_A_GRID}"
        )
    values_by_key = {key: list(values) for key, values in grid.items()}
    for key, values in values_by_key.items():
        if not values:
            raise StrategyConfigError("grid", f"the parameter {key!r} has no value; {_A_GRID}")
    keys = list(values_by_key)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*values_by_key.values())
    ]


def load_datasets(data: DataSource | Mapping[str, DataSource], symbol: str) -> dict[str, Bars]:
    """The sweep's data sets by symbol: bars as given, files read now (BarsError on a bad one)."""
    sources: Mapping[str, DataSource] = data if isinstance(data, Mapping) else {symbol: data}
    if not sources:
        raise StrategyConfigError("data", "no data set given")
    return {
        key: source if isinstance(source, Bars) else read_bars(Path(source))
        for key, source in sources.items()
    }


def fingerprint(bars: Bars) -> str:
    """A hash of the bars' contents (times and prices, not where they came from)."""
    digest = hashlib.sha256()
    for column in (bars.times, bars.open, bars.high, bars.low, bars.close, bars.volume):
        digest.update(column.tobytes())
    return digest.hexdigest()[:32]


def run_options(spec: RunSpec) -> dict[str, Any]:
    """Every run option of `spec` (all its fields but the strategy and the parameters)."""
    return {
        field.name: getattr(spec, field.name)
        for field in dataclasses.fields(spec)
        if field.name not in _SPEC_ONLY
    }


def job_key(spec: RunSpec, data_fingerprint: str) -> str:
    """The job's key: a hash of the strategy's reference, the parameters, the data set's
    fingerprint and every run option that is not at its default (so an option RunSpec gains
    later, left at its default, keeps the keys of the sweeps stored before)."""
    defaults = {field.name: field.default for field in dataclasses.fields(spec)}
    options = {k: v for k, v in run_options(spec).items() if k == "symbol" or v != defaults[k]}
    document = {
        "strategy": spec.strategy_name,
        "parameters": spec.parameters,
        "data": data_fingerprint,
        "options": options,
    }
    return _hash(json.dumps(document, sort_keys=True, separators=(",", ":"), default=repr))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One job of a sweep before it is stored: its data set's key, its spec, its key."""

    data: str
    spec: RunSpec
    key: str

    def row(self, bars: Bars, name: str | None) -> JobRow:
        """The pending backtest it is stored as."""
        label = self.spec.default_name() if name is None else f"{name} {self.spec.default_name()}"
        return JobRow(
            job_key=self.key,
            name=label[:200],
            start_date=bars.time_at(0),
            end_date=bars.time_at(len(bars) - 1),
            initial_capital=self.spec.cash,
            config=self.spec.config_document(bars),
        )


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """Everything a sweep runs, checked, before anything is stored."""

    strategy: str
    space: Any
    constraints: str | None
    options: dict[str, Any]
    datasets: dict[str, Bars]
    fingerprints: dict[str, str]
    jobs: list[PlannedJob]
    excluded: list[dict[str, Any]]

    def dataset_documents(self) -> list[dict[str, Any]]:
        """The data sets as the sweep's row lists them."""
        return [
            {
                "name": key,
                "source": bars.source,
                "bars": len(bars),
                "fingerprint": self.fingerprints[key],
            }
            for key, bars in self.datasets.items()
        ]


def plan_sweep(
    strategy: str | type[Strategy],
    grid: Grid,
    datasets: Mapping[str, Bars],
    constraint: Constraint | str | None,
    settings: Mapping[str, Any],
) -> SweepPlan:
    """The sweep's jobs in job order (data set by data set, configs in grid order), each
    config checked (StrategyConfigError) and each data set (BarsError for one bar: a stored
    backtest's last bar comes after its first), so a bad one stores nothing. A config
    listed twice is two jobs. `settings` are RunSpec's run options."""
    configs = expand_grid(grid)
    excluded: list[dict[str, Any]] = []
    if constraint is not None:
        configs, excluded = split_configs(configs, constraint)
    for bars in datasets.values():
        check_storable(bars)
    fingerprints = {key: fingerprint(bars) for key, bars in datasets.items()}
    jobs: list[PlannedJob] = []
    seen: dict[str, int] = {}
    for key in datasets:
        for config in configs:
            spec = RunSpec.of(strategy, config, symbol=key, **settings)
            base = job_key(spec, fingerprints[key])
            # The same job listed again is another job: its key counts its repeats.
            repeats = seen[base] = seen.get(base, -1) + 1
            key_of_job = base if not repeats else _hash(f"{base}#{repeats}")
            jobs.append(PlannedJob(key, spec, key_of_job))
    first = jobs[0].spec
    options = {k: v for k, v in run_options(first).items() if k != "symbol"}
    return SweepPlan(
        strategy=first.strategy_name,
        space=_space(grid, len(configs) + len(excluded)),
        constraints=_constraint_text(constraint),
        options=json.loads(json.dumps(options, default=repr)),
        datasets=dict(datasets),
        fingerprints=fingerprints,
        jobs=jobs,
        excluded=excluded,
    )


def _space(grid: Grid, count: int) -> Any:
    """The grid as the sweep's row keeps it: as given, or its size if it is too large."""
    space: Any = (
        {key: list(values) for key, values in grid.items()}
        if isinstance(grid, Mapping)
        else [dict(config) for config in grid]
    )
    try:
        text = json.dumps(space, allow_nan=False)
    except (TypeError, ValueError):
        return {"configs": count}
    return space if len(text.encode()) <= MAX_JSON_BYTES // 2 else {"configs": count}


def _constraint_text(constraint: Constraint | str | None) -> str | None:
    if constraint is None or isinstance(constraint, str):
        return constraint
    text = getattr(constraint, "text", None)  # a parsed expression keeps what was written
    if isinstance(text, str):
        return text
    name = getattr(constraint, "__qualname__", type(constraint).__qualname__)
    return f"callable {getattr(constraint, '__module__', '?')}.{name}"


def check_resumable(plan: SweepPlan, sweep: Sweep, strategy_id: int) -> None:
    """InvalidValue, one line, unless `plan` is the sweep `sweep` ran: the same strategy,
    options and data sets (a data file that changed since is named)."""
    if strategy_id != sweep.strategy_id:
        raise InvalidValue(
            "strategy_id",
            f"sweep {sweep.id} belongs to strategy {sweep.strategy_id}, not {strategy_id}",
        )
    if plan.strategy != sweep.strategy:
        raise InvalidValue(
            "strategy", f"sweep {sweep.id} ran {sweep.strategy!r}, not {plan.strategy!r}"
        )
    stored = sweep.fingerprints()
    if set(stored) != set(plan.fingerprints):
        raise InvalidValue(
            "data",
            f"sweep {sweep.id} ran on the data sets {', '.join(sorted(stored))}, "
            f"not {', '.join(sorted(plan.fingerprints))}",
        )
    for document in plan.dataset_documents():
        name = document["name"]
        if stored[name] != document["fingerprint"]:
            raise InvalidValue(
                "data",
                f"the data set {name} ({document['source']}) changed since sweep {sweep.id} "
                "ran: its content is not the same; restore the file, or start a new sweep",
            )
    for option, value in plan.options.items():
        if option in sweep.options and sweep.options[option] != value:
            raise InvalidValue(
                option,
                f"sweep {sweep.id} ran with {option}={sweep.options[option]!r}, not {value!r}",
            )
