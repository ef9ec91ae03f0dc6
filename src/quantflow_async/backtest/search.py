"""The ask/tell loop of a search: Optuna's sampler proposes configs, a runner the caller gives
runs each batch of them as backtests, and their statistic goes back to the sampler.

The study lives in memory only. It starts from the trials already stored (`history`): each
is added to it as it ended, and the ones that never finished are run again first. So the
database stays the only store of a search, and a search resumed after any stop goes on
from what it holds. Each trial's sampler is seeded from the search's seed and the trial's
number, so with a seed the trials depend only on the ones before them: a search is
repeatable, and a resumed one asks what the uninterrupted one would have.

Optuna comes with the `optimize` extra and is imported only here, when a search starts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from quantflow_async.backtest.constraints import Constraint, parse_constraint
from quantflow_async.backtest.objective import Objective
from quantflow_async.backtest.search_space import (
    Choice,
    Dimension,
    FloatRange,
    IntRange,
    SearchSpace,
)
from quantflow_async.errors import StrategyConfigError
from quantflow_async.extras import require_extra

log = logging.getLogger(__name__)

METHODS: Final = ("tpe", "random")
"""How a search proposes configs: Optuna's TPE sampler, or its random one."""
MAX_EXCLUDED_IN_A_ROW: Final = 1_000
"""Proposals the constraint may exclude one after another before the search gives up."""
_SEED_STRIDE: Final = 1_000_003

TrialState = Literal["completed", "no_value", "failed", "excluded", "unfinished"]
"""How a trial ended: its backtest completed with a value of the statistic, or without one
(told to the sampler as pruned: worse than any value), its backtest failed, the constraint
excluded its config (never run, never stored), or it never finished (run again on resume)."""


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One trial of a search: its number (the order it was asked in), its config (the fixed
    parameters too), how it ended, its value and its backtest."""

    number: int
    config: Mapping[str, Any]
    state: TrialState
    value: float | None = None
    backtest_id: int | None = None


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """What the runner gives back for one config: its backtest, and the metrics it stored
    (None: the backtest failed)."""

    backtest_id: int | None
    metrics: Mapping[str, Any] | None


RunTrials = Callable[[Sequence[dict[str, Any]]], Awaitable[Sequence[TrialOutcome]]]
"""Runs a batch of configs as backtests (at once) and gives back an outcome for each, in order."""


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Every trial of the search in the order asked, those of the history too."""

    trials: tuple[TrialRecord, ...]
    objective: Objective

    @property
    def ran(self) -> int:
        """Trials whose backtest ran to an end (completed or failed)."""
        return sum(1 for t in self.trials if t.state in ("completed", "no_value", "failed"))

    @property
    def excluded(self) -> tuple[TrialRecord, ...]:
        return tuple(t for t in self.trials if t.state == "excluded")

    @property
    def best(self) -> TrialRecord | None:
        """The completed trial with the best value; the first of equals."""
        best: TrialRecord | None = None
        for trial in self.trials:
            if trial.value is None or trial.state != "completed":
                continue
            if best is None or self.objective.better(trial.value, best.value or 0.0):
                best = trial
        return best


def check_search(
    space: SearchSpace,
    *,
    trials: int,
    method: str,
    seed: int | None,
    batch: int,
    constraint: Constraint | str | None,
) -> Constraint | None:
    """Every option of a search checked (StrategyConfigError), before anything is stored;
    the constraint parsed, its names checked against the space's parameters."""
    for option, value in (("trials", trials), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise StrategyConfigError(option, f"must be an int >= 1, got {value!r}")
    if method not in METHODS:
        raise StrategyConfigError("search", f"must be one of {', '.join(METHODS)}, got {method!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise StrategyConfigError("seed", f"must be a whole number >= 0, got {seed!r}")
    if constraint is None or not isinstance(constraint, str):
        return constraint
    parsed = parse_constraint(constraint)
    unknown = sorted(parsed.names - set(space.names))
    if unknown:
        raise StrategyConfigError(
            "constraint",
            f"no parameter named {unknown[0]!r} (parameters: {', '.join(sorted(space.names))})",
        )
    return parsed


async def drive_search(
    space: SearchSpace,
    run_trials: RunTrials,
    *,
    trials: int,
    objective: Objective,
    method: str = "tpe",
    seed: int | None = None,
    batch: int = 1,
    constraint: Constraint | str | None = None,
    history: Sequence[TrialRecord] = (),
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> SearchOutcome:
    """Run trials of `space` until `trials` backtests have run (the history's count), `batch`
    at a time, and return every trial.

    `history` holds the trials stored so far, by number; its unfinished ones run first, with
    their own configs. A config `constraint` excludes is told to the sampler as pruned (so
    it looks elsewhere), counted, and not run: it uses none of `trials`. `on_trial` is called
    with each trial as it ends. With `seed`, the same history, batch and space give the same
    trials.
    """
    check = check_search(
        space, trials=trials, method=method, seed=seed, batch=batch, constraint=constraint
    )
    optuna = require_extra("optuna", extra="optimize", purpose="a search")
    search = _Search(optuna, space, objective, method, seed, check, on_trial)
    for record in _ordered(history):
        search.add(record)
    rerun = [n for n, record in search.records.items() if record.state == "unfinished"]
    ran = sum(1 for record in search.records.values() if record.state != "excluded") - len(rerun)
    while ran < trials or rerun:
        # Unfinished trials run again in batches of their own, as they first ran, so each
        # new trial is asked with the same trials finished as in an uninterrupted search.
        numbers, rerun = rerun[:batch], rerun[batch:]
        if not numbers:
            numbers = search.ask(min(batch, trials - ran))
        outcomes = await run_trials([dict(search.records[n].config) for n in numbers])
        if len(outcomes) != len(numbers):
            raise RuntimeError(f"run_trials gave {len(outcomes)} outcomes for {len(numbers)}")
        for number, outcome in zip(numbers, outcomes, strict=True):
            search.tell(number, outcome)
        ran += len(numbers)
    return SearchOutcome(tuple(search.records[n] for n in sorted(search.records)), objective)


def _ordered(history: Sequence[TrialRecord]) -> list[TrialRecord]:
    return sorted(history, key=lambda record: record.number)


def _keeps(check: Constraint, config: Mapping[str, Any]) -> bool:
    try:
        return bool(check(config))
    except StrategyConfigError:
        raise
    except Exception as exc:
        raise StrategyConfigError(
            "constraint", f"fails on {dict(config)}: {type(exc).__name__}: {exc}"
        ) from None


class _Search:
    """The in-memory Optuna study, and every trial as a record, by number."""

    def __init__(
        self,
        optuna: Any,
        space: SearchSpace,
        objective: Objective,
        method: str,
        seed: int | None,
        check: Constraint | None,
        on_trial: Callable[[TrialRecord], None] | None,
    ) -> None:
        self._optuna = optuna
        self._space = space
        self._objective = objective
        self._method = method
        self._seed = seed
        self._check = check
        self._on_trial = on_trial
        self._distributions = {
            name: _distribution(optuna, dimension) for name, dimension in space.searched.items()
        }
        self._states = optuna.trial.TrialState
        self.study = optuna.create_study(direction=objective.direction, sampler=self._sampler(0))
        self.records: dict[int, TrialRecord] = {}
        self._excluded_in_a_row = 0

    def _sampler(self, number: int) -> Any:
        seed = None if self._seed is None else (self._seed * _SEED_STRIDE + number) % 2**32
        samplers = self._optuna.samplers
        if self._method == "random":
            return samplers.RandomSampler(seed=seed)
        return samplers.TPESampler(seed=seed)

    def add(self, record: TrialRecord) -> None:
        """A stored trial, added to the study as it ended; numbered as the study numbers it."""
        states = self._states
        state = {
            "completed": states.COMPLETE, "no_value": states.PRUNED, "failed": states.FAIL,
            "excluded": states.PRUNED, "unfinished": states.RUNNING,
        }[record.state]  # fmt: skip
        params = {name: record.config[name] for name in self._distributions}
        value = record.value if record.state == "completed" else None
        self.study.add_trial(
            self._optuna.trial.create_trial(
                state=state, value=value, params=params, distributions=self._distributions
            )
        )
        # The study numbers trials as they come; its .trials would deep-copy every one.
        number = len(self.records)
        self.records[number] = replace(record, number=number)

    def ask(self, count: int) -> list[int]:
        """The numbers of `count` new trials to run; those the constraint excludes on the way
        are told to the study as pruned, and recorded."""
        numbers: list[int] = []
        while len(numbers) < count:
            number = len(self.records)
            self.study.sampler = self._sampler(number)  # this trial's own seed
            trial = self.study.ask(self._distributions)
            fixed = self._space.fixed
            config = {n: fixed[n] if n in fixed else trial.params[n] for n in self._space.names}
            self.records[number] = TrialRecord(number, config, "unfinished")
            if self._check is None or _keeps(self._check, config):
                self._excluded_in_a_row = 0
                numbers.append(number)
                continue
            self.tell(number, None)
            self._excluded_in_a_row += 1
            if self._excluded_in_a_row >= MAX_EXCLUDED_IN_A_ROW:
                raise StrategyConfigError(
                    "constraint",
                    f"excluded the last {self._excluded_in_a_row} configs the search "
                    "proposed: widen the space or loosen the constraint",
                )
        return numbers

    def tell(self, number: int, outcome: TrialOutcome | None) -> None:
        """Tell the study how trial `number` ended (None: the constraint excluded it)."""
        states, record = self._states, self.records[number]
        if outcome is None:
            self.study.tell(number, state=states.PRUNED)
            record = replace(record, state="excluded")
        elif outcome.metrics is None:
            self.study.tell(number, state=states.FAIL)
            record = replace(record, state="failed", backtest_id=outcome.backtest_id)
        elif (value := self._objective.value(outcome.metrics)) is None:
            self.study.tell(number, state=states.PRUNED)
            record = replace(record, state="no_value", backtest_id=outcome.backtest_id)
        else:
            self.study.tell(number, value)
            record = replace(
                record, state="completed", value=value, backtest_id=outcome.backtest_id
            )
        self.records[number] = record
        log.debug("search trial %d %s: %s", number, record.state, record.value)
        if self._on_trial is not None:
            self._on_trial(record)


def _distribution(optuna: Any, dimension: Dimension) -> Any:
    distributions = optuna.distributions
    if isinstance(dimension, IntRange):
        return distributions.IntDistribution(
            dimension.low, dimension.high, log=dimension.log, step=dimension.step
        )
    if isinstance(dimension, FloatRange):
        return distributions.FloatDistribution(
            dimension.low, dimension.high, log=dimension.log, step=dimension.step
        )
    if isinstance(dimension, Choice):
        return distributions.CategoricalDistribution(dimension.options)
    raise TypeError(f"a fixed parameter has no distribution: {dimension!r}")
