"""The ask/tell loop of a search, against a runner that scores configs at once: how many
trials run, in what batches, what a seed repeats, what a resumed search asks, and how trials
that fail, have no value or are excluded are told."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from quantflow_async.backtest import run_backtest, synthetic_bars
from quantflow_async.backtest.objective import STATISTICS, Objective
from quantflow_async.backtest.search import (
    MAX_SKIPPED_IN_A_ROW,
    TrialOutcome,
    TrialRecord,
    drive_search,
)
from quantflow_async.backtest.search_space import parse_space
from quantflow_async.errors import StrategyConfigError

SPACE = parse_space(
    {
        "fast": {"int": [2, 50]},
        "slow": {"int": [10, 200], "step": 5},
        "k": {"float": [0.5, 3.0], "log": True},
        "mode": {"choice": ["a", "b"]},
        "size": 3,
    }
)
SHARPE = Objective("sharpe")


class Scorer:
    """Scores each config at once (best at fast=20, k=1), remembering every batch it ran."""

    def __init__(self, metrics: Mapping[str, Any] | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.metrics = metrics

    async def __call__(self, configs: Sequence[dict[str, Any]]) -> list[TrialOutcome]:
        self.batches.append(list(configs))
        start = sum(len(batch) for batch in self.batches[:-1])
        return [
            TrialOutcome(start + i, self.metrics if self.metrics is not None else _score(c))
            for i, c in enumerate(configs)
        ]


def _score(config: Mapping[str, Any]) -> dict[str, float]:
    return {"sharpe": -((config["fast"] - 20) ** 2) - (config.get("k", 1) - 1) ** 2}


def _configs(trials: Sequence[TrialRecord]) -> list[Mapping[str, Any]]:
    return [trial.config for trial in trials]


@pytest.mark.parametrize("method", ["tpe", "random"])
async def test_a_seed_repeats_the_same_trials(method: str) -> None:
    first = await drive_search(SPACE, Scorer(), trials=25, objective=SHARPE, method=method, seed=7)
    second = await drive_search(SPACE, Scorer(), trials=25, objective=SHARPE, method=method, seed=7)
    assert _configs(first.trials) == _configs(second.trials)
    other = await drive_search(SPACE, Scorer(), trials=25, objective=SHARPE, method=method, seed=8)
    assert _configs(other.trials) != _configs(first.trials)


async def test_a_search_logs_no_line_of_optuna_about_its_own_study() -> None:
    """Optuna's "A new study created in memory with name: no-name-..." is not the user's."""
    lines: list[str] = []

    class Catcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    catcher = Catcher()
    optuna_logger = logging.getLogger("optuna")
    optuna_logger.addHandler(catcher)
    level = optuna_logger.level
    optuna_logger.setLevel(logging.INFO)  # Optuna's own default
    try:
        await drive_search(SPACE, Scorer(), trials=2, objective=SHARPE, seed=1)
    finally:
        optuna_logger.removeHandler(catcher)
        optuna_logger.setLevel(level)
    assert not [line for line in lines if "study created" in line]
    assert optuna_logger.level == level


async def test_trials_run_in_batches_of_the_batch_size_until_the_count_is_reached() -> None:
    scorer = Scorer()
    outcome = await drive_search(SPACE, scorer, trials=7, objective=SHARPE, seed=1, batch=3)
    assert [len(batch) for batch in scorer.batches] == [3, 3, 1]
    assert outcome.ran == 7
    assert [t.number for t in outcome.trials] == list(range(7))
    assert all(t.state == "completed" and t.config["size"] == 3 for t in outcome.trials)


async def test_every_config_lies_in_the_space() -> None:
    outcome = await drive_search(SPACE, Scorer(), trials=30, objective=SHARPE, seed=2)
    for config in _configs(outcome.trials):
        assert 2 <= config["fast"] <= 50
        assert 10 <= config["slow"] <= 200 and config["slow"] % 5 == 0
        assert 0.5 <= config["k"] <= 3.0
        assert config["mode"] in ("a", "b")


async def test_tpe_finds_a_better_config_than_its_random_start() -> None:
    outcome = await drive_search(SPACE, Scorer(), trials=60, objective=SHARPE, seed=3)
    values = [t.value for t in outcome.trials if t.value is not None]
    assert outcome.best is not None
    assert outcome.best.value == max(values)
    assert outcome.best.value > max(values[:10])


async def test_minimize_picks_the_smallest_value() -> None:
    lowest = Objective("sharpe", "minimize")
    outcome = await drive_search(SPACE, Scorer(), trials=15, objective=lowest, seed=4)
    assert outcome.best is not None
    assert outcome.best.value == min(t.value for t in outcome.trials if t.value is not None)


async def test_excluded_configs_are_counted_not_run_and_use_none_of_the_trials() -> None:
    scorer = Scorer()
    outcome = await drive_search(
        SPACE, scorer, trials=20, objective=SHARPE, seed=5, constraint="slow > 4 * fast"
    )
    ran = [config for batch in scorer.batches for config in batch]
    assert len(ran) == outcome.ran == len(outcome.trials) == 20
    assert all(config["slow"] > 4 * config["fast"] for config in ran)
    assert outcome.excluded
    assert all(config["slow"] <= 4 * config["fast"] for config in outcome.excluded)


async def test_a_config_is_tried_once_and_a_space_tried_whole_ends_the_search() -> None:
    tiny = parse_space({"mode": {"choice": ["a", "b", "c"]}, "fast": 5})
    scorer = Scorer()
    outcome = await drive_search(tiny, scorer, trials=10, objective=SHARPE, method="random", seed=1)
    assert sorted(config["mode"] for batch in scorer.batches for config in batch) == ["a", "b", "c"]
    assert outcome.ran == 3
    assert outcome.exhausted
    assert outcome.repeats >= MAX_SKIPPED_IN_A_ROW


async def test_a_tpe_search_that_has_settled_still_runs_every_trial_the_space_allows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """TPE, settled near the best config, keeps proposing configs tried already; the next
    proposals are then drawn at random, so the search ends only when the space is tried
    whole, and says so once."""
    small = parse_space({"fast": {"int": [1, 40]}, "size": 3})
    scorer = Scorer()
    outcome = await drive_search(small, scorer, trials=41, objective=SHARPE, seed=3, batch=2)
    ran = sorted(config["fast"] for batch in scorer.batches for config in batch)
    assert ran == list(range(1, 41))
    assert outcome.exhausted
    assert caplog.text.count("proposals in a row excluded or repeated") == 1


async def test_a_constraint_given_as_a_callable_is_applied_too() -> None:
    outcome = await drive_search(
        SPACE, Scorer(), trials=10, objective=SHARPE, seed=5, constraint=lambda c: c["mode"] == "a"
    )
    assert {t.config["mode"] for t in outcome.trials if t.state == "completed"} == {"a"}


async def test_a_constraint_that_excludes_everything_stops_the_search() -> None:
    scorer = Scorer()
    with pytest.raises(StrategyConfigError, match=f"excluded the last {MAX_SKIPPED_IN_A_ROW}"):
        await drive_search(
            SPACE, scorer, trials=5, objective=SHARPE, method="random", constraint="fast > 50"
        )
    assert scorer.batches == []


async def test_failed_backtests_and_missing_values_are_trials_without_a_value() -> None:
    failing = await drive_search(SPACE, Scorer(metrics=None), trials=3, objective=SHARPE)
    assert [t.state for t in failing.trials] == ["completed"] * 3  # scored: metrics not given
    empty = await drive_search(SPACE, Scorer(metrics={"sharpe": None}), trials=3, objective=SHARPE)
    assert [t.state for t in empty.trials] == ["no_value"] * 3
    assert empty.best is None

    async def fail(configs: Sequence[dict[str, Any]]) -> list[TrialOutcome]:
        return [TrialOutcome(None, None) for _ in configs]

    failed = await drive_search(SPACE, fail, trials=3, objective=SHARPE)
    assert [t.state for t in failed.trials] == ["failed"] * 3
    assert failed.ran == 3


async def test_a_stored_value_too_large_for_the_store_counts_as_its_number() -> None:
    outcome = await drive_search(
        SPACE, Scorer(metrics={"sharpe": "1e400"}), trials=2, objective=SHARPE
    )
    assert [t.value for t in outcome.trials] == [float("inf")] * 2


async def test_a_resumed_search_runs_only_the_remaining_trials_and_asks_what_it_would_have() -> (
    None
):
    options: dict[str, Any] = {
        "objective": SHARPE,
        "seed": 9,
        "batch": 2,
        "constraint": "fast < slow",
    }
    whole = await drive_search(SPACE, Scorer(), trials=30, **options)
    stopped = list((await drive_search(SPACE, Scorer(), trials=14, **options)).trials)
    last = stopped[-1]
    stopped[-1] = TrialRecord(last.number, last.config, "unfinished")  # its worker was killed
    scorer = Scorer()
    resumed = await drive_search(SPACE, scorer, trials=30, history=stopped, **options)
    assert scorer.batches[0] == [dict(last.config)]  # run again first, in a batch of its own
    assert sum(len(batch) for batch in scorer.batches) == 30 - 13
    assert _configs(resumed.trials) == _configs(whole.trials)
    assert [t.value for t in resumed.trials] == [t.value for t in whole.trials]


async def test_a_search_that_has_run_its_trials_runs_nothing_more() -> None:
    done = await drive_search(SPACE, Scorer(), trials=5, objective=SHARPE, seed=1)
    scorer = Scorer()
    again = await drive_search(
        SPACE, scorer, trials=5, objective=SHARPE, seed=1, history=done.trials
    )
    assert scorer.batches == []
    assert again.trials == done.trials


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trials": 0}, "trials: must be an int >= 1, got 0"),
        ({"batch": 0}, "batch: must be an int >= 1, got 0"),
        ({"method": "grid"}, "search: must be one of tpe, random, got 'grid'"),
        ({"seed": -1}, "seed: must be a whole number >= 0, got -1"),
        ({"constraint": "fats < slow"}, "constraint: no parameter named 'fats'"),
        ({"constraint": "fast.real < slow"}, "constraint: 'fast.real < slow': attribute access"),
    ],
)
async def test_a_bad_option_is_refused_before_any_trial_runs(
    options: dict[str, Any], message: str
) -> None:
    scorer = Scorer()
    arguments: dict[str, Any] = {"trials": 3, "objective": SHARPE, **options}
    with pytest.raises(StrategyConfigError, match=message):
        await drive_search(SPACE, scorer, **arguments)
    assert scorer.batches == []


def test_an_unknown_statistic_is_refused_naming_the_stored_ones() -> None:
    with pytest.raises(StrategyConfigError, match="'sharp' is not a stored statistic; one of "):
        Objective("sharp")


def test_the_statistics_a_search_may_name_are_the_numbers_every_backtest_stores() -> None:
    result = run_backtest("sma_cross", synthetic_bars(300), {"fast": 5, "slow": 20})
    stored = {key for key, value in result.metrics.items() if not isinstance(value, str)}
    assert set(STATISTICS) == stored


async def test_configs_the_strategy_refuses_are_left_out_as_excluded_ones() -> None:
    scorer = Scorer()
    outcome = await drive_search(
        SPACE, scorer, trials=10, objective=SHARPE, seed=6,
        refused=lambda config: config["slow"] <= config["fast"] * 3,
    )  # fmt: skip
    ran = [config for batch in scorer.batches for config in batch]
    assert len(ran) == 10 and all(config["slow"] > config["fast"] * 3 for config in ran)
    assert all(config["slow"] <= config["fast"] * 3 for config in outcome.excluded)


def test_a_config_drawn_from_a_space_lies_in_it_and_a_seed_draws_the_same() -> None:
    import random

    draws, again = random.Random(4), random.Random(4)
    first = [SPACE.sample(draws) for _ in range(50)]
    assert first == [SPACE.sample(again) for _ in range(50)]
    assert len({(c["fast"], c["slow"]) for c in first}) > 40
    for config in first:
        assert 2 <= config["fast"] <= 50 and config["slow"] % 5 == 0
        assert 0.5 <= config["k"] <= 3.0 and config["mode"] in ("a", "b") and config["size"] == 3
