"""A run's settings (everything but the strategy's parameters): their names and types
(`RunOptions`), and their one check.

`run_backtest` makes the check, and `RunSpec.of` makes it before a stored backtest or a sweep
stores anything; the CLI turns its error into a line naming the option.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final, TypedDict

from quantflow_async.errors import StrategyConfigError
from quantflow_async.validation import refuse_unknown_keywords

if TYPE_CHECKING:
    from typing_extensions import Unpack

MAX_DECIMALS: Final = 12
"""The most decimals a stored price or amount is rounded to."""


class RunOptions(TypedDict, total=False):
    """The options of a run, by name, as every entry point takes them (`run_stored_backtest`,
    `run_sweep`, `run_sweep_on_cluster`, `run_search`) and `RunSpec` carries them; one left
    out takes RunSpec's default. Their meaning is `run_backtest`'s."""

    symbol: str
    cash: float
    commission: float
    slippage: float
    exclusive_orders: bool
    periods_per_year: float | None
    margin: float
    trade_on_close: bool
    hedging: bool
    finalize_trades: bool
    spread: float
    price_decimals: int | None
    money_decimals: int


_NUMBERS: Final[dict[str, dict[str, Any]]] = {
    "cash": {"low": 0.0, "low_inclusive": False},
    "commission": {"low": 0.0, "high": 1.0},
    "slippage": {"low": 0.0, "high": 1.0},
    "spread": {"low": 0.0, "high": 1.0},
    "margin": {"low": 0.0, "high": 1.0, "low_inclusive": False, "high_inclusive": True},
    "periods_per_year": {"low": 0.0, "low_inclusive": False},
}
_FLAGS: Final = ("exclusive_orders", "trade_on_close", "hedging", "finalize_trades")
_DECIMALS: Final = ("price_decimals", "money_decimals")
_NONE_MEANS_UNSET: Final = frozenset({"periods_per_year", "price_decimals"})


def check_settings(**settings: Unpack[RunOptions]) -> None:
    """Each run setting given, or StrategyConfigError naming the first bad one (TypeError
    for a name that is not a setting)."""
    refuse_unknown_keywords(settings, RunOptions.__annotations__, "run option", "run options")
    given: dict[str, Any] = {
        key: value
        for key, value in settings.items()
        if not (value is None and key in _NONE_MEANS_UNSET)
    }
    for key, bounds in _NUMBERS.items():
        if key in given:
            _check_number(key, given[key], **bounds)
    for key in _FLAGS:
        if key in given and not isinstance(given[key], bool):
            raise StrategyConfigError(key, f"must be True or False, got {given[key]!r}")
    for key in _DECIMALS:
        if key in given:
            _check_decimals(key, given[key])
    symbol = given.get("symbol")
    if "symbol" in given and (not isinstance(symbol, str) or not symbol.strip()):
        raise StrategyConfigError("symbol", f"must be a name that is not blank, got {symbol!r}")


def _check_decimals(key: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DECIMALS:
        raise StrategyConfigError(
            key, f"must be a whole number in [0, {MAX_DECIMALS}], got {value!r}"
        )


def _check_number(
    key: str,
    value: float,
    *,
    low: float,
    high: float = math.inf,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StrategyConfigError(key, f"must be a finite number, got {value!r}")
    too_low = value < low or (value == low and not low_inclusive)
    too_high = value > high or (value == high and not high_inclusive)
    if too_low or too_high:
        bounds = f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
        raise StrategyConfigError(key, f"must be in {bounds}, got {value!r}")
