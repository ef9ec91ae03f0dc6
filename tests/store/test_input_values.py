"""Values at the edges: refused with InvalidValue naming the field, or given back as they went in.

The Decimal limits hold whatever decimal context the caller has set, and are checked without
ever expanding a number to its full text; instants and JSON are refused when either backend
could not give them back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import pytest

from quantflow_async import Database, InvalidValue
from quantflow_async.validation import EARLIEST_INSTANT, LATEST_INSTANT, MAX_JSON_DEPTH

from ..conftest import T0, make_fill


def refusal(field: str, **overrides: Any) -> str:
    """The message of the InvalidValue a fill with `overrides` raises; it must name `field`."""
    with pytest.raises(InvalidValue) as caught:
        make_fill(1, **overrides)
    assert caught.value.field == field
    return str(caught.value)


# Decimals


def test_a_tiny_exponent_is_refused_at_once_without_expanding_the_number() -> None:
    started = time.perf_counter()
    message = refusal("quantity", quantity="1e-999999999")
    assert time.perf_counter() - started < 0.5
    assert "18 digits after the point" in message


def test_a_huge_exponent_is_refused_as_too_many_digits() -> None:
    assert "38 digits" in refusal("quantity", quantity="1e999999999")


def test_a_138_digit_value_is_refused_not_rounded() -> None:
    assert "38 digits" in refusal("price", price="1" * 138)


def test_19_decimals_are_refused_under_a_caller_context_of_8_digits() -> None:
    with localcontext() as context:
        context.prec = 8
        message = refusal("fee", fee="0.1234567890123456789")
    assert "18 digits after the point" in message


def test_38_digits_are_kept_exactly_under_a_caller_context_of_8_digits() -> None:
    value = "12345678901234567890.123456789012345678"
    with localcontext() as context:
        context.prec = 8
        fill = make_fill(1, price=value)
    assert fill.price == Decimal(value)


def test_a_malformed_number_is_refused_when_the_caller_does_not_trap_invalid_operation() -> None:
    with localcontext() as context:
        context.traps[InvalidOperation] = False
        assert "not a decimal number" in refusal("quantity", quantity="1,5")


def test_trailing_zeros_past_the_limits_are_dropped_not_stored() -> None:
    started = time.perf_counter()
    fill = make_fill(1, fee="0E-999999999", quantity="1." + "0" * 100)
    assert time.perf_counter() - started < 0.5
    assert (fill.fee, fill.quantity) == (Decimal(0), Decimal(1))


async def test_values_at_the_digit_limits_read_back_exactly(db: Database, strategy_id: int) -> None:
    widest = Decimal("12345678901234567890.123456789012345678")
    smallest = Decimal("0.000000000000000001")
    fill = make_fill(strategy_id, price=widest, quantity=smallest, fee=widest.copy_negate())
    await db.trades.insert_many([fill])
    (trade,) = await db.trades.list()
    assert (trade.price, trade.quantity, trade.fee) == (widest, smallest, widest.copy_negate())


# Instants


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
    ids=["first instant", "last instant"],
)
def test_the_two_instants_postgresql_reads_as_infinity_are_refused(moment: datetime) -> None:
    message = refusal("executed_at", executed_at=moment)
    assert "must be between 0001-01-01T00:00:00.000001+00:00 and 9999-12-31" in message


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
    ],
    ids=["before year 1 in UTC", "after year 9999 in UTC"],
)
def test_an_instant_whose_utc_time_overflows_is_an_invalid_value(moment: datetime) -> None:
    assert "must be between" in refusal("executed_at", executed_at=moment)


async def test_the_earliest_and_latest_storable_instants_read_back_equal(
    db: Database, strategy_id: int
) -> None:
    fills = [
        make_fill(strategy_id, 1, executed_at=EARLIEST_INSTANT),
        make_fill(strategy_id, 2, executed_at=LATEST_INSTANT),
    ]
    await db.trades.insert_many(fills)
    stored = [trade.executed_at for trade in await db.trades.list()]
    assert stored == [EARLIEST_INSTANT, LATEST_INSTANT]
    assert all(moment.tzinfo is not None for moment in stored)


async def test_a_backtest_starting_before_the_earliest_instant_is_refused(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(InvalidValue) as caught:
        await db.backtests.create(
            strategy_id=strategy_id,
            name="too early",
            start_date=datetime(1, 1, 1, tzinfo=UTC),
            end_date=T0,
            initial_capital=1,
        )
    assert caught.value.field == "start_date"


# JSON


def nested(depth: int) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for _ in range(depth - 1):
        document = {"a": document}
    return document


def test_metadata_nested_5000_deep_is_an_invalid_value() -> None:
    message = refusal("metadata", metadata=nested(5000))
    assert f"nested more than {MAX_JSON_DEPTH} levels deep" in message


async def test_metadata_nested_to_the_limit_reads_back_equal(
    db: Database, strategy_id: int
) -> None:
    document = nested(MAX_JSON_DEPTH)
    await db.trades.insert_many([make_fill(strategy_id, metadata=document)])
    (trade,) = await db.trades.list()
    assert trade.metadata == document


@pytest.mark.parametrize("number", [1e16, -1e16, 1.5e300], ids=str)
def test_a_float_postgresql_would_turn_into_an_integer_is_refused(number: float) -> None:
    message = refusal("metadata", metadata={"x": [number]})
    assert "gives back as an integer; store it as an int or a str" in message


def test_a_json_key_that_is_not_a_string_is_refused() -> None:
    assert "JSON keys are str" in refusal("metadata", metadata={"nested": {1: "one"}})


async def test_json_numbers_read_back_equal_and_of_the_same_type(
    db: Database, strategy_id: int
) -> None:
    numbers = [0.1, 1e-7, 5e-324, 9999999999999998.0, 123.0, 2**70, -(2**63), 0, True, None]
    await db.trades.insert_many([make_fill(strategy_id, metadata={"numbers": numbers})])
    (trade,) = await db.trades.list()
    assert trade.metadata is not None
    back = trade.metadata["numbers"]
    assert back == numbers
    assert [type(value) for value in back] == [type(value) for value in numbers]


async def test_negative_zero_and_tuples_read_back_as_zero_and_lists_on_every_backend(
    db: Database, strategy_id: int
) -> None:
    # Documented: jsonb has no -0.0 and JSON has no tuples, so both backends store 0.0 and lists.
    fill = make_fill(strategy_id, metadata={"zero": -0.0, "pair": (1, 2)})
    assert fill.metadata == {"zero": 0.0, "pair": [1, 2]}
    await db.trades.insert_many([fill])
    (trade,) = await db.trades.list()
    assert trade.metadata == {"zero": 0.0, "pair": [1, 2]}
    assert str(trade.metadata["zero"]) == "0.0"


async def test_strategy_config_follows_the_same_json_rules(db: Database) -> None:
    with pytest.raises(InvalidValue) as caught:
        await db.strategies.create(name="big", config={"volume": 2.5e16})
    assert caught.value.field == "config"
