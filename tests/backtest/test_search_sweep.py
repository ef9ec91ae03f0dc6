"""run_search: a search stored as a sweep, each trial a backtest run in the worker processes;
repeatable with a seed; resumed from what is stored, running only the remaining trials."""

from __future__ import annotations

from typing import Any

import pytest

from quantflow_async import Database
from quantflow_async.backtest import run_sweep, synthetic_bars
from quantflow_async.backtest.search import TrialRecord
from quantflow_async.backtest.search_sweep import run_search
from quantflow_async.errors import InvalidValue, StrategyConfigError

SPACE = {"fast": {"int": [2, 12]}, "slow": {"int": [15, 60], "step": 5}}
BARS = synthetic_bars(240, seed=3)


class Stop(Exception):
    """Raised by a trial callback to stop a search part way, as a Ctrl-C would."""


def _configs(trials: tuple[TrialRecord, ...]) -> list[dict[str, Any]]:
    return [dict(trial.config) for trial in trials]


async def _search(db: Database, strategy_id: int, **options: Any) -> Any:
    arguments: dict[str, Any] = {
        "trials": 4, "maximize": "return_pct", "seed": 11, "workers": 2,
        "constraint": "fast < slow", **options,
    }  # fmt: skip
    return await run_search(db, "sma_cross", SPACE, BARS, strategy_id=strategy_id, **arguments)


async def test_each_trial_is_a_stored_backtest_of_the_search_sweep(
    db: Database, strategy_id: int
) -> None:
    result = await _search(db, strategy_id)
    sweep = await db.sweeps.get(result.sweep_id)
    assert (sweep.kind, sweep.status, sweep.constraints) == ("search", "completed", "fast < slow")
    assert sweep.space["parameters"] == SPACE and sweep.space["maximize"] == "return_pct"
    assert await db.sweeps.counts(sweep.id) == {"completed": 4}
    for trial in result.search.trials:
        backtest = await db.backtests.get(trial.backtest_id)
        assert backtest.sweep_id == sweep.id
        assert backtest.config["parameters"] == trial.config
        assert backtest.metrics["return_pct"] == trial.value
    best = await db.sweeps.best(sweep.id, "return_pct", limit=1)
    assert result.best is not None and best[0].id == result.best.backtest_id


async def test_a_seeded_search_runs_the_same_trials_again(db: Database, strategy_id: int) -> None:
    first = await _search(db, strategy_id)
    second = await _search(db, strategy_id)
    assert first.sweep_id != second.sweep_id
    assert _configs(first.search.trials) == _configs(second.search.trials)


async def test_a_stopped_search_resumed_runs_only_the_remaining_trials_as_if_never_stopped(
    db: Database, strategy_id: int
) -> None:
    whole = await _search(db, strategy_id, trials=6)
    seen: list[TrialRecord] = []

    def stop_after_three(trial: TrialRecord) -> None:
        seen.append(trial)
        if len(seen) == 3:  # told the first of the second batch: its second ran, untold
            raise Stop

    with pytest.raises(Stop):
        await _search(db, strategy_id, trials=6, on_trial=stop_after_three)
    stopped = (await db.sweeps.list())[-1].sweep
    assert stopped.status == "interrupted"
    assert await db.sweeps.counts(stopped.id) == {"completed": 4}
    ran: list[TrialRecord] = []
    resumed = await _search(db, strategy_id, trials=6, resume=stopped.id, on_trial=ran.append)
    assert resumed.sweep_id == stopped.id
    assert len(ran) == 2  # the study rebuilt from the four stored, then two new trials
    assert _configs(resumed.search.trials) == _configs(whole.search.trials)
    assert [t.value for t in resumed.search.trials] == [t.value for t in whole.search.trials]
    assert await db.sweeps.counts(stopped.id) == {"completed": 6}
    assert (await db.sweeps.get(stopped.id)).status == "completed"


async def test_a_finished_search_resumed_runs_nothing_and_more_trials_go_on_from_it(
    db: Database, strategy_id: int
) -> None:
    done = await _search(db, strategy_id, trials=2)
    ran: list[TrialRecord] = []
    again = await _search(db, strategy_id, trials=2, resume=done.sweep_id, on_trial=ran.append)
    assert ran == [] and again.search.trials == done.search.trials
    more = await _search(db, strategy_id, trials=4, resume=done.sweep_id, on_trial=ran.append)
    assert len(ran) == 2 and more.search.trials[:2] == done.search.trials


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"maximize": "sharp"}, StrategyConfigError, "'sharp' is not a stored statistic"),
        ({"minimize": "sharpe"}, StrategyConfigError, "give one statistic to maximize or one"),
        ({"maximize": None}, StrategyConfigError, "give one statistic to maximize or one"),
        ({"trials": 0}, StrategyConfigError, "trials: must be an int >= 1"),
        ({"method": "grid"}, StrategyConfigError, "search: must be one of tpe, random"),
        ({"constraint": "fast < slw"}, StrategyConfigError, "no parameter named 'slw'"),
        (
            {"constraint": "fast < 10 or slow"},
            StrategyConfigError,
            "'slow' is 60 on {'fast': 12, 'slow': 60}",
        ),
        ({"constraint": "fast / (slow - 60) < 1"}, StrategyConfigError, "ZeroDivisionError"),
        ({"workers": 0}, StrategyConfigError, "workers: must be an int >= 1"),
        ({"commission": 2}, StrategyConfigError, "commission"),
    ],
)
async def test_a_bad_argument_is_refused_before_anything_is_stored(
    db: Database, strategy_id: int, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await _search(db, strategy_id, **options)
    assert await db.sweeps.list() == []


async def test_a_bad_space_or_two_data_sets_are_refused_before_anything_is_stored(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(StrategyConfigError, match="fast: low 12 is above high 2"):
        await run_search(
            db, "sma_cross", {"fast": {"int": [12, 2]}}, BARS, strategy_id=strategy_id,
            trials=2, maximize="sharpe",
        )  # fmt: skip
    with pytest.raises(StrategyConfigError, match="a search runs on one data set, got 2"):
        await run_search(
            db, "sma_cross", SPACE, {"A": BARS, "B": BARS}, strategy_id=strategy_id, trials=2,
            maximize="sharpe",
        )  # fmt: skip
    assert await db.sweeps.list() == []


async def test_resuming_with_other_settings_or_a_grid_sweep_is_refused(
    db: Database, strategy_id: int
) -> None:
    done = await _search(db, strategy_id, trials=2)
    with pytest.raises(InvalidValue, match=r"searched with seed=11, not 12"):
        await _search(db, strategy_id, seed=12, resume=done.sweep_id)
    other = "searched with the constraint 'fast < slow', not"
    with pytest.raises(InvalidValue, match=f"{other} 'fast < 10'"):
        await _search(db, strategy_id, constraint="fast < 10", resume=done.sweep_id)
    with pytest.raises(InvalidValue, match=f"{other} None"):
        await _search(db, strategy_id, constraint=None, resume=done.sweep_id)
    with pytest.raises(InvalidValue, match=f"{other} a callable"):
        await _search(db, strategy_id, constraint=lambda c: True, resume=done.sweep_id)
    assert await db.sweeps.counts(done.sweep_id) == {"completed": 2}
    grid = await run_sweep(
        db, "sma_cross", {"fast": [3], "slow": [20]}, BARS, strategy_id=strategy_id, workers=1
    )
    with pytest.raises(InvalidValue, match=f"sweep {grid.sweep_id} is a grid"):
        await _search(db, strategy_id, resume=grid.sweep_id)
