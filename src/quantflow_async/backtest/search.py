"""The ask/tell loop of a search: Optuna's sampler proposes configs, a runner the caller gives
runs each batch of them as backtests, and their statistic goes back to the sampler.

The study lives in memory only. It starts from the trials already stored (`history`): each
is added to it as it ended, and the ones that never finished are run again first. So the
database stays the only store of a search, and a search resumed after any stop goes on
from what it holds. A trial is a stored backtest: a proposal the constraint excludes, or one
that repeats a config already tried, is told to the study as failed (which the samplers
ignore) and another is asked in its place; it is counted, never stored. After
RANDOM_AFTER_SKIPPED of them in a row the next proposals are drawn at random, so a sampler
that has settled does not end a search that still has configs to try. Each proposal's
sampler is seeded from the search's seed, the trial's number and the attempt, so with a
seed a search is repeatable, and a resumed one asks what the uninterrupted one would have.

Optuna comes with the `optimize` extra and is imported only here, when a search starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from quantflow_async.backtest.constraints import Constraint, keeps, parse_constraint
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
MAX_SKIPPED_IN_A_ROW: Final = 1_000
"""Proposals excluded or repeated one after another before a search stops: its space holds
no new config the constraint allows (or next to none)."""
RANDOM_AFTER_SKIPPED: Final = 20
"""Proposals excluded or repeated one after another after which the next are drawn at
random: TPE, once it has settled on a region, goes on proposing the configs tried there."""

TrialState = Literal["completed", "no_value", "failed", "unfinished"]
"""How a trial ended: its backtest completed with a value of the statistic, or without one
(told to the sampler as pruned: worse than any value), its backtest failed, or it never
finished (it runs again on resume)."""


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
    """Every trial of the search in the order asked, those of the history too; the proposals
    the constraint excluded and those that repeated a config, in this run; and whether the
    search stopped early, finding no new config to try."""

    trials: tuple[TrialRecord, ...]
    objective: Objective
    excluded: tuple[Mapping[str, Any], ...] = ()
    repeats: int = 0
    exhausted: bool = False

    @property
    def ran(self) -> int:
        """Trials whose backtest ran to an end (completed or failed)."""
        return sum(1 for t in self.trials if t.state != "unfinished")

    @property
    def best(self) -> TrialRecord | None:
        """The completed trial with the best value; the first of equals."""
        best: TrialRecord | None = None
        for trial in self.trials:
            if trial.value is None:
                continue
            if best is None or best.value is None or self.objective.better(trial.value, best.value):
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
    refused: Callable[[Mapping[str, Any]], bool] | None = None,
) -> SearchOutcome:
    """Run trials of `space` until `trials` backtests have run (the history's count), `batch`
    at a time, and return every trial.

    `history` holds the trials stored so far, in the order they were asked; its unfinished
    ones run first, with their own configs. A proposal `constraint` excludes, or one that
    repeats a config, is not run and uses none of `trials`; after MAX_SKIPPED_IN_A_ROW of
    them in a row the search stops (StrategyConfigError if no trial has run at all).
    `on_trial` is called with each trial as it ends. A config `refused` is true for (one
    the strategy does not take, such as slow <= fast) is left out as an excluded one is.
    With `seed`, the same history, batch and space give the same trials.
    """
    check = check_search(
        space, trials=trials, method=method, seed=seed, batch=batch, constraint=constraint
    )
    optuna = require_extra("optuna", extra="optimize", purpose="a search")
    search = _Search(optuna, space, objective, method, seed, check, refused)
    for record in history:
        search.add(record)
    rerun = [n for n, record in enumerate(search.records) if record.state == "unfinished"]
    ran = len(search.records) - len(rerun)
    while ran < trials or rerun:
        # Unfinished trials run again in batches of their own, as they first ran, so each
        # new trial is asked with the same trials finished as in an uninterrupted search.
        numbers, rerun = rerun[:batch], rerun[batch:]
        if not numbers and not search.exhausted:
            numbers = search.ask(min(batch, trials - ran))
        if not numbers:
            break
        outcomes = await run_trials([dict(search.records[n].config) for n in numbers])
        if len(outcomes) != len(numbers):
            raise RuntimeError(f"run_trials gave {len(outcomes)} outcomes for {len(numbers)}")
        for number, outcome in zip(numbers, outcomes, strict=True):
            record = search.tell(number, outcome)
            log.debug("search trial %d %s: %s", number, record.state, record.value)
            if on_trial is not None:
                on_trial(record)
        ran += len(numbers)
    return SearchOutcome(
        tuple(search.records), objective, tuple(search.excluded), search.repeats, search.exhausted
    )


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


class _Search:
    """The in-memory Optuna study, and every trial as a record, in order."""

    def __init__(
        self,
        optuna: Any,
        space: SearchSpace,
        objective: Objective,
        method: str,
        seed: int | None,
        check: Constraint | None,
        refused: Callable[[Mapping[str, Any]], bool] | None,
    ) -> None:
        self._optuna = optuna
        self._refused = refused
        self._space = space
        self._objective = objective
        self._method = method
        self._seed = seed
        self._check = check
        self._distributions = {
            name: _distribution(optuna, dimension) for name, dimension in space.searched.items()
        }
        self._states = optuna.trial.TrialState
        self.study = _quiet_study(optuna, objective.direction, self._sampler(0, 0))
        self.records: list[TrialRecord] = []
        self._in_study: list[int] = []  # each trial's number in the study, which has more
        self._asked = 0  # trials in the study: its .trials would deep-copy every one
        self._tried: set[str] = set()
        self.excluded: list[dict[str, Any]] = []
        self.repeats = 0
        self.exhausted = False

    def _sampler(self, number: int, attempt: int) -> Any:
        seed = None
        if self._seed is not None:
            seed = int.from_bytes(
                hashlib.blake2b(f"{self._seed}:{number}:{attempt}".encode(), digest_size=4).digest()
            )
        samplers = self._optuna.samplers
        if self._method == "random" or attempt >= RANDOM_AFTER_SKIPPED:
            return samplers.RandomSampler(seed=seed)
        return samplers.TPESampler(seed=seed)

    def add(self, record: TrialRecord) -> None:
        """A stored trial, added to the study as it ended."""
        states = self._states
        state = {
            "completed": states.COMPLETE, "no_value": states.PRUNED, "failed": states.FAIL,
            "unfinished": states.RUNNING,
        }[record.state]  # fmt: skip
        params = {name: record.config[name] for name in self._distributions}
        value = record.value if record.state == "completed" else None
        self.study.add_trial(
            self._optuna.trial.create_trial(
                state=state, value=value, params=params, distributions=self._distributions
            )
        )
        self._in_study.append(self._asked)
        self._asked += 1
        self.records.append(replace(record, number=len(self.records)))
        self._tried.add(_key(record.config))

    def ask(self, count: int) -> list[int]:
        """The numbers of `count` new trials to run, or fewer if the space has no new config
        left that the constraint allows."""
        numbers: list[int] = []
        skipped = 0
        while len(numbers) < count:
            number = len(self.records)
            self.study.sampler = self._sampler(number, skipped)
            trial = self.study.ask(self._distributions)
            self._asked += 1
            fixed = self._space.fixed
            config = {n: fixed[n] if n in fixed else trial.params[n] for n in self._space.names}
            excluded = self._check is not None and not keeps(self._check, config)
            excluded = excluded or self._refused is not None and self._refused(config)
            repeated = not excluded and _key(config) in self._tried
            if not excluded and not repeated:
                self.records.append(TrialRecord(number, config, "unfinished"))
                self._in_study.append(trial.number)
                self._tried.add(_key(config))
                numbers.append(number)
                skipped = 0
                continue
            # Failed trials are ignored by the samplers: the study goes on as if this one had
            # never been asked, which is how a resumed search, that never saw it, goes on.
            self.study.tell(trial, state=self._states.FAIL)
            if excluded:
                self.excluded.append(config)
            else:
                self.repeats += 1
            skipped += 1
            if skipped >= MAX_SKIPPED_IN_A_ROW:
                if not self.records and not numbers:
                    raise StrategyConfigError(
                        "constraint",
                        f"excluded the last {skipped} configs the search proposed (or the "
                        "strategy refused them): widen the space or loosen the constraint",
                    )
                log.warning("search: %d proposals in a row excluded or repeated; stopping", skipped)
                self.exhausted = True
                break
        return numbers

    def tell(self, number: int, outcome: TrialOutcome) -> TrialRecord:
        """Tell the study how trial `number` ended; its record."""
        states, record = self._states, self.records[number]
        at = self._in_study[number]
        if outcome.metrics is None:
            self.study.tell(at, state=states.FAIL)
            record = replace(record, state="failed", backtest_id=outcome.backtest_id)
        elif (value := self._objective.value(outcome.metrics)) is None:
            self.study.tell(at, state=states.PRUNED)
            record = replace(record, state="no_value", backtest_id=outcome.backtest_id)
        else:
            self.study.tell(at, value)
            record = replace(
                record, state="completed", value=value, backtest_id=outcome.backtest_id
            )
        self.records[number] = record
        return record


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


def _quiet_study(optuna: Any, direction: str, sampler: Any) -> Any:
    """A study in memory, made without Optuna's line "A new study created in memory with
    name: no-name-..." on stderr: the study is this search's own, not one the user named."""
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        return optuna.create_study(direction=direction, sampler=sampler)
    finally:
        logger.setLevel(level)
