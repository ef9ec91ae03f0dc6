"""The one check of a run's settings (everything but the strategy's parameters).

`run_backtest` makes it, and `RunSpec.of` makes it before a stored backtest or a sweep stores
anything; the CLI turns its error into a line naming the option.
"""

from __future__ import annotations

import math
from typing import Final

from quantflow_async.errors import StrategyConfigError

MAX_DECIMALS: Final = 12
"""The most decimals a stored price or amount is rounded to."""


def check_settings(
    *,
    cash: float,
    commission: float,
    slippage: float,
    exclusive_orders: bool,
    symbol: str,
    periods_per_year: float | None,
    margin: float = 1.0,
    trade_on_close: bool = False,
    hedging: bool = False,
    finalize_trades: bool = False,
    spread: float = 0.0,
    price_decimals: int | None = None,
    money_decimals: int = 8,
) -> None:
    """Every run setting, or StrategyConfigError naming the first bad one."""
    _check_number("cash", cash, low=0.0, low_inclusive=False)
    _check_number("commission", commission, low=0.0, high=1.0)
    _check_number("slippage", slippage, low=0.0, high=1.0)
    _check_number("spread", spread, low=0.0, high=1.0)
    _check_number("margin", margin, low=0.0, high=1.0, low_inclusive=False, high_inclusive=True)
    if periods_per_year is not None:
        _check_number("periods_per_year", periods_per_year, low=0.0, low_inclusive=False)
    for key, flag in (
        ("exclusive_orders", exclusive_orders),
        ("trade_on_close", trade_on_close),
        ("hedging", hedging),
        ("finalize_trades", finalize_trades),
    ):
        if not isinstance(flag, bool):
            raise StrategyConfigError(key, f"must be True or False, got {flag!r}")
    if price_decimals is not None:
        _check_decimals("price_decimals", price_decimals)
    _check_decimals("money_decimals", money_decimals)
    if not isinstance(symbol, str) or not symbol.strip():
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
