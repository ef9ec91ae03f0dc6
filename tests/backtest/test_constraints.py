"""Sweep constraints: a safe expression over the parameters, or a callable, keeps the configs
it is true for; the rest are counted and listed, never stored."""

from __future__ import annotations

import pytest

from quantflow_async import Database, run_sweep
from quantflow_async.backtest import synthetic_bars
from quantflow_async.backtest.constraints import parse_constraint, split_configs
from quantflow_async.backtest.strategy import StrategyConfigError

GRID = [{"fast": f, "slow": s} for f in (5, 10, 20) for s in (10, 20, 40)]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("fast < slow", [(5, 10), (5, 20), (5, 40), (10, 20), (10, 40), (20, 40)]),
        ("slow >= 2 * fast", [(5, 10), (5, 20), (5, 40), (10, 20), (10, 40), (20, 40)]),
        ("fast < slow < 40", [(5, 10), (5, 20), (10, 20)]),
        (
            "not (fast == 10 or slow == 10) and slow % 20 == 0",
            [(5, 20), (5, 40), (20, 20), (20, 40)],
        ),
        ("slow - fast > 25 or fast ** 2 == 400 and slow == 10", [(5, 40), (10, 40), (20, 10)]),
        ("-fast > -6", [(5, 10), (5, 20), (5, 40)]),
    ],
)
def test_an_expression_keeps_the_configs_it_is_true_for(
    text: str, kept: list[tuple[int, int]]
) -> None:
    chosen, left_out = split_configs(GRID, text)
    assert [(c["fast"], c["slow"]) for c in chosen] == kept
    assert len(chosen) + len(left_out) == len(GRID)
    assert all(not parse_constraint(text)(config) for config in left_out)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast.real < slow", "attribute access not allowed"),
        ("__import__('os').system('true')", "calls not allowed"),
        ("[fast][0] < slow", "subscripts not allowed"),
        ("(lambda: 1)() < slow", "calls not allowed"),
        ("fast < ", "is not an expression: invalid syntax at its end"),
        ("fast < < slow", "is not an expression: invalid syntax at column 8"),
        ("fast < None", "None is not allowed"),
        ("fats < slow", "no parameter named 'fats' \\(parameters: fast, slow\\)"),
        ("fast / (slow - slow) > 1", "fails on {'fast': 5, 'slow': 10}: ZeroDivisionError"),
        ("fast ** 10000 > 1", "an exponent of 10000 is too large"),
        ("fast > 100", "excludes every one of the 9 configs"),
        ("", "expected an expression"),
        ("fast", "'fast' is 5 on {'fast': 5, 'slow': 10}, not True or False: compare it"),
        ("fast and slow > 3", "'fast and slow > 3': 'fast' is 5 on {'fast': 5, 'slow': 10}"),
        ("slow < 3 or fast - 5", "'slow < 3 or fast - 5': 'fast - 5' is 0 on"),
        ("not slow", "'not slow': 'slow' is 10 on"),
    ],
)
def test_what_is_not_allowed_is_one_line_naming_it(text: str, message: str) -> None:
    with pytest.raises(StrategyConfigError, match=message) as raised:
        split_configs(GRID, text)
    assert "\n" not in str(raised.value)


def test_a_parameter_that_is_true_or_false_may_stand_alone() -> None:
    grid = [{"fast": f, "use_stop": u} for f in (5, 10) for u in (True, False)]
    chosen, _ = split_configs(grid, "use_stop or fast < 10")
    assert chosen == [grid[0], grid[1], grid[2]]
    assert split_configs(grid, "not use_stop")[0] == [grid[1], grid[3]]


def test_a_text_parameter_standing_alone_is_refused_with_a_comparison_that_works() -> None:
    with pytest.raises(StrategyConfigError, match="compare it \\(for example kind == 'ema'\\)"):
        split_configs([{"kind": "ema"}, {"kind": "sma"}], "kind")
    assert split_configs([{"kind": "ema"}, {"kind": "sma"}], "kind == 'ema'")[0] == [
        {"kind": "ema"}
    ]


def test_a_callable_is_a_constraint_too() -> None:
    chosen, left_out = split_configs(GRID, lambda config: config["fast"] * 4 <= config["slow"])
    assert [(c["fast"], c["slow"]) for c in chosen] == [(5, 20), (5, 40), (10, 40)]
    assert len(left_out) == 6


async def test_a_sweep_stores_only_the_configs_the_constraint_keeps(sqlite_url: str) -> None:
    async with Database(sqlite_url) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        # fast >= slow is no valid sma_cross config: without the constraint nothing would run
        result = await run_sweep(
            db, "sma_cross", {"fast": [5, 10, 20], "slow": [10, 20]}, synthetic_bars(300),
            strategy_id=strategy_id, workers=1, constraint="fast < slow",
        )  # fmt: skip
        assert (result.completed, result.failed) == (3, 0)
        assert result.excluded == ({"fast": 10, "slow": 10}, {"fast": 20, "slow": 10},
                                   {"fast": 20, "slow": 20})  # fmt: skip
        stored = await db.backtests.list()
        assert sorted(b.config["parameters"]["fast"] for b in stored if b.config) == [5, 5, 10]
