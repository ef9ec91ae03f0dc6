"""A search space in JSON: ranges, steps, log ranges, choices and fixed values, each checked
with one line naming the parameter and what is wrong."""

from __future__ import annotations

import pytest

from quantflow_async.backtest.search_space import (
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    parse_space,
)
from quantflow_async.errors import StrategyConfigError

DOCUMENT = {
    "fast": {"int": [2, 50]},
    "slow": {"int": [10, 200], "step": 5},
    "k": {"float": [0.5, 3.0], "log": True},
    "q": {"float": [0.0, 1.0], "step": 0.25},
    "mode": {"choice": ["a", "b", None, 3]},
    "size": 0.5,
}


def test_each_kind_of_dimension_is_read_in_the_order_given() -> None:
    space = parse_space(DOCUMENT)
    assert space.dimensions == (
        ("fast", IntRange(2, 50)),
        ("slow", IntRange(10, 200, step=5)),
        ("k", FloatRange(0.5, 3.0, log=True)),
        ("q", FloatRange(0.0, 1.0, step=0.25)),
        ("mode", Choice(("a", "b", None, 3))),
        ("size", Fixed(0.5)),
    )
    assert space.fixed == {"size": 0.5}
    assert list(space.searched) == ["fast", "slow", "k", "q", "mode"]


def test_a_space_reads_back_from_its_own_document_and_from_json_text() -> None:
    space = parse_space(DOCUMENT)
    assert space.document() == DOCUMENT
    assert parse_space(space.document()) == space
    assert parse_space('{"fast": {"int": [2, 50]}}') == parse_space({"fast": {"int": [2, 50]}})


def test_the_corners_are_every_range_at_its_low_then_at_its_high() -> None:
    low, high = parse_space(DOCUMENT).corners()
    assert low == {"fast": 2, "slow": 10, "k": 0.5, "q": 0.0, "mode": "a", "size": 0.5}
    assert high == {"fast": 50, "slow": 200, "k": 3.0, "q": 1.0, "mode": 3, "size": 0.5}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{fast", "space: is not JSON"),
        ([1, 2], "space: must be a JSON object of parameters, got list"),
        ({"size": 1}, "space: has nothing to search"),
        ({"fast": [5, 10]}, "fast: a list is a grid's values; a search takes"),
        ({"fast": {"int": [2, 50], "float": [1, 2]}}, "fast: give exactly one of int, float"),
        ({"fast": {}}, "fast: give exactly one of int, float, choice, got none"),
        ({"fast": {"int": [2, 50], "stp": 2}}, "fast: 'stp' is not an option of int"),
        ({"fast": {"int": [2]}}, r"fast: int takes \[low, high\], got \[2\]"),
        ({"fast": {"int": [2, 5.5]}}, r"fast: int takes \[low, high\] as whole numbers"),
        ({"fast": {"int": [True, 5]}}, r"fast: int takes \[low, high\] as whole numbers"),
        ({"fast": {"int": [50, 2]}}, "fast: low 50 is above high 2"),
        (
            {"slow": {"int": [10, 201], "step": 5}},
            "slow: high 201 is not low 10 plus whole steps of 5: make it 200",
        ),
        ({"slow": {"int": [10, 200], "step": 0}}, "slow: an int range's step must be a whole"),
        ({"k": {"float": [0.0, 3.0], "log": True}}, "k: a log range needs low > 0, got 0.0"),
        ({"k": {"float": [1, 3], "log": True, "step": 1}}, "k: log and step do not go together"),
        ({"k": {"float": [1, 3], "log": "yes"}}, "k: log must be true or false"),
        ({"q": {"float": [0, 1], "step": 0.3}}, "q: high 1 is not low 0 plus whole steps of 0.3"),
        ({"q": {"float": [0, 1], "step": -1}}, "q: a float range's step must be a number > 0"),
        ({"mode": {"choice": []}}, "mode: choice takes a non-empty list of values"),
        ({"mode": {"choice": ["a", "a"]}}, 'mode: "a" is among the choices twice'),
        ({"mode": {"choice": [[1]]}}, "mode: a choice is a string, number, true/false or null"),
        ({"": {"int": [1, 2]}}, "space: a parameter's name must be a non-empty string"),
    ],
)
def test_a_bad_space_is_one_line_naming_the_parameter(document: object, message: str) -> None:
    with pytest.raises(StrategyConfigError, match=message) as raised:
        parse_space(document)  # type: ignore[arg-type]
    assert "\n" not in str(raised.value)
