"""What a stored backtest keeps is rounded once, half-even: prices to the data's own decimals,
fees and pnl to `money_decimals` (8); the metrics keep full float precision."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import backtesting.test
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from quantflow_async.backtest import Execution, RunSpec, read_bars, synthetic_bars
from quantflow_async.backtest.conversion import execution_fill, fill_chunks
from quantflow_async.backtest.rounding import price_decimals, rounded, rounded_text
from quantflow_async.backtest.settings import MAX_DECIMALS

from .support import make_bars

GOOG_CSV = Path(backtesting.test.__file__).parent / "GOOG.csv"


def execution(price: float, commission: float, pnl: float | None) -> Execution:
    when = datetime(2024, 1, 2, tzinfo=UTC)
    return Execution(1, 0, when, "GOOG", "sell", 7, price, commission, pnl)


def test_a_fee_with_float_noise_is_stored_as_its_eight_decimals() -> None:
    fill = execution_fill(
        execution(101.5, 49.945908900000006, -12.300000000000182),
        strategy_id=1,
        backtest_id=1,
        price_decimals=2,
    )
    assert (fill.price, fill.fee, fill.pnl) == (
        Decimal("101.5"),
        Decimal("49.9459089"),
        Decimal("-12.3"),
    )


def test_rounding_is_half_even_from_the_shortest_repr() -> None:
    assert rounded(2.675, 2) == Decimal("2.68")  # 2.675 as written, not its binary value
    assert rounded(0.125, 2) == Decimal("0.12")
    assert rounded(-0.0000000001, 8) == Decimal(0)
    assert rounded(1500.0, 8) == Decimal(1500)


def midpoints(decimals: int) -> st.SearchStrategy[float]:
    """Floats whose shortest repr is a midpoint at `decimals` places (k + 1/2 quanta), and
    their neighbours one ulp either side."""
    quantum = Decimal(1).scaleb(-decimals - 1)
    return st.builds(
        lambda k, step: math.nextafter(float((10 * k + 5) * quantum), step),
        st.integers(-(10**15), 10**15),
        st.sampled_from([-math.inf, 0.0, math.inf]),
    )


@given(
    st.data(),
    st.integers(0, MAX_DECIMALS),
    st.sampled_from(["any", "money", "midpoint", "decimal"]),
)
@example(None, 2, "fixed")
def test_rounded_text_is_the_text_of_rounded(data: st.DataObject, decimals: int, kind: str) -> None:
    values = {
        "any": st.floats(allow_nan=False),
        "money": st.floats(-1e7, 1e7),
        "midpoint": midpoints(decimals),
        "decimal": st.decimals(-(10**14), 10**14, places=decimals + 2).map(float),
    }
    fixed = [2.675, 0.125, -0.0, 0.0, 49.945908900000006, -0.0000000001, 1500.0, 0.5, -2.5]
    for value in fixed if kind == "fixed" else [data.draw(values[kind])]:
        try:
            expected = format(rounded(value, decimals), "f")
        except ArithmeticError as error:  # past what Decimal's 28 digits hold
            with pytest.raises(type(error)):
                rounded_text(value, decimals)
        else:
            assert rounded_text(value, decimals) == expected, (value, decimals)


def test_the_datas_decimals_are_the_most_any_price_has() -> None:
    assert price_decimals(read_bars(GOOG_CSV)) == 2
    assert price_decimals(make_bars([(100, 101.5, 99.25, 100.125)])) == 3
    assert price_decimals(synthetic_bars(100)) is None  # made by arithmetic: kept as is


def test_a_run_over_goog_stores_prices_in_cents_and_keeps_float_metrics() -> None:
    bars = read_bars(GOOG_CSV)
    result = RunSpec.of("sma_cross", {}, commission=0.0021, spread=0.0007).run(bars)
    fills = [fill for chunk in fill_chunks(result, strategy_id=1, backtest_id=1) for fill in chunk]
    assert result.price_decimals == 2 and len(fills) > 50
    assert all(-fill.price.as_tuple().exponent <= 2 for fill in fills)  # type: ignore[operator]
    assert any(e.price != float(f.price) for e, f in zip(result.executions, fills, strict=True))
    assert result.metrics["fees"] == sum(e.commission for e in result.executions)


def test_price_decimals_given_override_the_datas() -> None:
    bars = read_bars(GOOG_CSV)
    result = RunSpec.of("sma_cross", {}, price_decimals=0, money_decimals=2).run(bars)
    (fill, *_) = next(fill_chunks(result, strategy_id=1, backtest_id=1))
    assert fill.price == fill.price.to_integral_value()
    assert fill.fee is not None and -fill.fee.as_tuple().exponent <= 2  # type: ignore[operator]
