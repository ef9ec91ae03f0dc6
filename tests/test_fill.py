"""Fill: validated when made; a bad value raises a ValueError that names its field."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from quantflow_async import Fill, InvalidValue

from .conftest import T0, make_fill

BAD_VALUES: list[tuple[str, Any, str]] = [
    ("side", "hold", "one of 'buy', 'sell'"),
    ("side", "BUY", "one of 'buy', 'sell'"),
    ("quantity", 0, "> 0"),
    ("quantity", "-1", "> 0"),
    ("quantity", float("nan"), "finite"),
    ("quantity", "NaN", "finite"),
    ("quantity", float("inf"), "finite"),
    ("quantity", "-Infinity", "finite"),
    ("quantity", True, "bool"),
    ("quantity", "1,5", "not a decimal"),
    ("quantity", [1], "expected Decimal"),
    ("quantity", "0.0000000000000000001", "18 digits after the point"),
    ("quantity", "1" * 39, "38 digits"),
    ("price", "-0.01", ">= 0"),
    ("price", None, "expected Decimal"),
    ("fee", "sNaN", "finite"),
    ("pnl", float("-inf"), "finite"),
    ("symbol", "", "non-empty"),
    ("symbol", " BTC", "surrounding spaces"),
    ("symbol", "BTC\nUSDT", "control"),
    ("symbol", "X" * 65, "longer than 64"),
    ("symbol", "\ud800", "unprintable"),
    ("metadata", {"note": "\ud800"}, "surrogate"),
    ("symbol", 42, "expected str"),
    ("type", "", "non-empty"),
    ("status", "lost", "must be one of"),
    ("metadata", {"at": datetime(2024, 1, 1)}, "not JSON-serialisable"),
    ("metadata", {"x": float("nan")}, "not JSON-serialisable"),
    ("metadata", {"x": "a\x00b"}, "NUL"),
    ("metadata", ["not", "a", "dict"], "expected a dict"),
    ("metadata", {"big": "x" * 70_000}, "larger than"),
    ("executed_at", datetime(2024, 1, 1), "timezone-aware"),
    ("executed_at", "2024-01-01T00:00:00Z", "expected a datetime"),
    ("strategy_id", 0, "positive"),
    ("strategy_id", "1", "expected a positive int"),
    ("backtest_id", -3, "positive"),
    ("external_id", "", "non-empty"),
]


@pytest.mark.parametrize(
    "field, value, message", BAD_VALUES, ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD_VALUES]
)
def test_bad_value_is_refused_naming_its_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        make_fill(1, **{field: value})
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_strings_and_ints_are_kept_exact() -> None:
    fill = make_fill(1, quantity="0.00000001", price=123456789, fee="0.1")
    assert fill.quantity == Decimal("0.00000001")
    assert fill.price == Decimal(123456789)
    assert fill.fee == Decimal("0.1")


def test_floats_go_through_their_shortest_repr_not_binary_expansion() -> None:
    fill = make_fill(1, quantity=0.1, price=42000.1)
    assert fill.quantity == Decimal("0.1")
    assert fill.price == Decimal("42000.1")


def test_executed_at_is_converted_to_utc() -> None:
    new_york = timezone(timedelta(hours=-5))
    fill = make_fill(1, executed_at=datetime(2024, 1, 1, 19, 0, tzinfo=new_york))
    assert fill.executed_at == datetime(2024, 1, 2, 0, 0, tzinfo=UTC)
    assert fill.executed_at.tzinfo is UTC


def test_defaults_describe_a_filled_market_order() -> None:
    fill = Fill(strategy_id=1, symbol="X", side="sell", quantity=1, price=1, executed_at=T0)
    assert (fill.type, fill.status, fill.backtest_id, fill.fee, fill.external_id) == (
        "market",
        "filled",
        None,
        None,
        None,
    )


def test_fill_is_immutable_and_its_metadata_is_a_copy() -> None:
    fill = make_fill(1, metadata={"order": {"id": 7}})
    with pytest.raises(AttributeError):
        fill.price = Decimal(1)  # type: ignore[misc]
    copy = fill.metadata
    assert copy is not None
    copy["order"]["id"] = 8
    assert fill.metadata == {"order": {"id": 7}}


def test_fill_survives_pickling_for_worker_processes() -> None:
    fill = make_fill(1, metadata={"a": 1}, fee="0.5", backtest_id=3)
    assert pickle.loads(pickle.dumps(fill)) == fill


def test_equal_fills_compare_and_hash_equal() -> None:
    assert make_fill(1, n=5) == make_fill(1, n=5)
    assert len({make_fill(1, n=5), make_fill(1, n=5), make_fill(1, n=6)}) == 2
