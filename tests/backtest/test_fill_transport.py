"""A Fill sent to another process (a sweep worker's fills, pickled) arrives whole: equal, with
every value exact, and cheap to receive because it is not checked a second time."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from quantflow_async import Fill
from quantflow_async.records import (
    TRADE_INSERT_COLUMNS,
    fills_from_rows,
    postgres_columns,
    sqlite_rows,
)


def _odd_fill() -> Fill:
    return Fill(
        strategy_id=7,
        backtest_id=3,
        symbol="ETH-USD",
        side="sell",
        quantity="1E+3",
        price="0.000000000000000001",
        fee=None,
        pnl="-2.50",
        executed_at=datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        metadata={"k": [1, 2.5, None], "s": "ü"},
        external_id=None,
    )


def test_a_pickled_fill_comes_back_equal_with_exact_values() -> None:
    fill = _odd_fill()
    back = pickle.loads(pickle.dumps(fill))
    assert back == fill and hash(back) == hash(fill)
    for name in ("strategy_id", "backtest_id", "symbol", "side", "type", "status"):
        assert getattr(back, name) == getattr(fill, name)
    assert (back.quantity, back.price, back.fee, back.pnl) == (
        Decimal(1000), Decimal("1E-18"), None, Decimal("-2.50"),
    )  # fmt: skip
    assert back.executed_at == fill.executed_at and back.executed_at.tzinfo is UTC
    assert back.metadata == fill.metadata
    assert back.external_id is None


def test_fills_sent_as_their_rows_come_back_equal_with_exact_values() -> None:
    other = Fill(
        strategy_id=1,
        symbol="B",
        side="buy",
        quantity=1,
        price="2.5",
        executed_at=datetime.now(UTC),
    )
    fills = [_odd_fill(), other]
    back = fills_from_rows(pickle.loads(pickle.dumps(sqlite_rows(fills))))
    assert back == fills
    assert [f.price for f in back] == [Decimal("1E-18"), Decimal("2.5")]
    assert back[0].metadata == {"k": [1, 2.5, None], "s": "ü"}


def test_a_pickled_fill_is_as_immutable_as_the_original() -> None:
    back = pickle.loads(pickle.dumps(_odd_fill()))
    with pytest.raises(AttributeError, match="immutable"):
        back.symbol = "X"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        back.nope  # type: ignore[attr-defined]  # noqa: B018


def test_driver_forms_follow_the_declared_column_order() -> None:
    fill = _odd_fill()
    (row,) = sqlite_rows([fill])
    columns = postgres_columns([fill])
    assert len(row) == len(columns) == len(TRADE_INSERT_COLUMNS)
    by_name = dict(zip(TRADE_INSERT_COLUMNS, row, strict=True))
    assert (by_name["symbol"], by_name["side"], by_name["pnl"]) == ("ETH-USD", "sell", "-2.50")
    assert by_name["quantity"] == "1000" and by_name["external_id"] is None
    pg = dict(zip(TRADE_INSERT_COLUMNS, (column[0] for column in columns), strict=True))
    assert pg["price"] == Decimal("1E-18") and pg["executed_at"] == fill.executed_at
    assert pg["metadata"] == by_name["metadata"]  # the same JSON text for both backends
