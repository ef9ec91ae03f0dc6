"""Records made by the readers' fast constructor are the records the class itself makes: the
same type and values, frozen, copied and pickled alike, and a class it cannot fill is refused
when the constructor is made."""

from __future__ import annotations

import copy
import pickle
from dataclasses import FrozenInstanceError, dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from quantflow_async.record_maker import record_maker
from quantflow_async.records import JsonObject, Trade
from quantflow_async.store.repositories.trade_rows import TRADE_COLUMNS, make_trade

AT = datetime(2024, 1, 1, tzinfo=UTC)
VALUES = (
    7, 1, 2, "BTCUSDT", "buy", "market", Decimal("0.5"), Decimal("42000.12"), Decimal("0.021"),
    AT, "filled", {"order": {"id": "A-1"}}, None, "ext-7", AT, AT,
)  # fmt: skip


def test_a_made_record_is_the_trade_the_class_would_make() -> None:
    made = make_trade(*VALUES)
    assert type(made) is Trade
    assert made == Trade(*VALUES)
    assert isinstance(made.metadata, JsonObject)


def test_a_made_record_stays_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        make_trade(*VALUES).symbol = "ETHUSDT"  # type: ignore[misc]


def test_a_made_record_copies_pickles_and_replaces_like_any_trade() -> None:
    made = make_trade(*VALUES)
    assert copy.copy(made) == made
    assert pickle.loads(pickle.dumps(made)) == made  # noqa: S301 - our own bytes
    assert replace(made, symbol="ETHUSDT").symbol == "ETHUSDT"


def test_a_class_with_other_fields_than_the_columns_is_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class Other:
        id: int

    with pytest.raises(TypeError, match="has fields"):
        record_maker(Other, TRADE_COLUMNS)


def test_a_class_without_slots_is_refused_when_the_maker_is_made() -> None:
    @dataclass(frozen=True)
    class Unslotted:
        id: int

    with pytest.raises((TypeError, AttributeError)):
        record_maker(Unslotted, ("id",))
