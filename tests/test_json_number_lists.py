"""A list of numbers (an equity curve) is checked and copied by whole-list passes; whatever it
holds, the result is the one the element-by-element rules give."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantflow_async.backtest.conversion import storable
from quantflow_async.errors import InvalidValue
from quantflow_async.validation import MAX_JSON_FLOAT, _plain_json

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, MAX_JSON_FLOAT, -MAX_JSON_FLOAT, math.nextafter(MAX_JSON_FLOAT, 0)]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
)
LISTS = st.lists(NUMBERS, max_size=20) | st.lists(st.floats(), max_size=20)


def one_by_one(items: list[Any]) -> list[Any]:
    """Each item through the checks on its own, as a list of one."""
    return [_plain_json([item], "f", 1)[0] for item in items]


def same(a: list[Any], b: list[Any]) -> bool:
    """Equal, with the same types and the same sign of every zero."""
    return len(a) == len(b) and all(
        type(x) is type(y)
        and (x == y or (x != x and y != y))
        and (not isinstance(x, float) or math.copysign(1, x) == math.copysign(1, y))
        for x, y in zip(a, b, strict=True)
    )


@given(LISTS)
def test_a_list_of_numbers_is_checked_as_each_number_alone(items: list[Any]) -> None:
    try:
        expected = one_by_one(items)
    except InvalidValue:
        with pytest.raises(InvalidValue):
            _plain_json(items, "f", 1)
        return
    assert same(_plain_json(items, "f", 1), expected)
    assert same(_plain_json(tuple(items), "f", 1), expected)


@given(LISTS)
def test_the_storable_form_of_a_list_of_numbers_is_each_numbers_own(items: list[Any]) -> None:
    assert same(storable(items), [storable(item) for item in items])


def test_negative_zero_stays_in_the_storable_form_and_is_zero_in_json() -> None:
    assert math.copysign(1, storable([1.0, -0.0])[1]) == -1
    assert math.copysign(1, _plain_json([1.0, -0.0], "f", 1)[1]) == 1
