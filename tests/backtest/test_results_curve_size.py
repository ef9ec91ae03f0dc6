"""The results document's equity curve is sized from its arrays, without writing its JSON
first: the size it reckons is never below the JSON's own, so the curve always fits the
store's limit on a document."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quantflow_async.backtest.conversion import _json_size_at_most, _seconds_of

EPOCH_SECONDS = st.integers(-62_135_596_800, 253_402_300_799) | st.integers(  # years 1 to 9999
    9_000_000_000,
    9_999_999_999,  # past 2**53 microseconds: the int is rounded to a float
)
MICROS = st.tuples(
    EPOCH_SECONDS, st.sampled_from([0, 0, 0, 1, 500_000, 999_999]) | st.integers(0, 999_999)
).map(lambda whole_and_rest: whole_and_rest[0] * 1_000_000 + whole_and_rest[1])
EQUITY = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(-1e17, 1e17)
    | st.sampled_from(
        [0.0, -0.0, 0.005, -0.004, 9.995, 99.996, 999_999_999_999_999.9, 1e16, -1e16, 123.45]
    )
)


def _curve_json(micros: np.ndarray, equity: np.ndarray) -> str:
    curve = {
        "time": _seconds_of(micros),
        "equity": [round(v, 2) + 0.0 if math.isfinite(v) else v for v in equity.tolist()],
    }
    return json.dumps(curve, separators=(",", ":"))


@settings(max_examples=400, deadline=None)
@given(st.data(), st.integers(0, 40))
def test_the_reckoned_size_is_never_below_the_json_written(data: st.DataObject, n: int) -> None:
    micros = np.array(data.draw(st.lists(MICROS, min_size=n, max_size=n)), dtype=np.int64)
    equity = data.draw(hnp.arrays(np.float64, n, elements=EQUITY))
    assert _json_size_at_most(micros, equity) >= len(_curve_json(micros, equity))


@pytest.mark.parametrize("step_micros", [3_600_000_000, 250_000, 1_000], ids=["1h", "250ms", "1ms"])
def test_the_reckoned_size_of_an_ordinary_curve_is_within_a_few_percent_of_the_json(
    step_micros: int,
) -> None:
    micros = 1_700_000_000_000_000 + step_micros * np.arange(3000, dtype=np.int64)
    equity = 100_000 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.004, 3000)))
    written = len(_curve_json(micros, equity))
    assert written <= _json_size_at_most(micros, equity) <= written * 1.03
