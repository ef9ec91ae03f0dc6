"""What a search optimizes and a heatmap shows: one stored statistic of a backtest, read back
from its metrics as a number.

A statistic that has no value for a backtest (a Sharpe ratio without trades is stored as null)
reads as None; one too large for the store, kept as its text, reads as that number again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from quantflow_async.errors import StrategyConfigError

STATISTICS: Final = (
    "avg_drawdown_duration", "avg_drawdown_pct", "avg_trade_duration", "avg_trade_pct", "bars",
    "best_trade_pct", "buy_hold_return_pct", "cagr_pct", "calmar", "equity_peak",
    "expectancy_pct", "exposure_pct", "fees", "final_equity", "kelly", "max_drawdown_duration",
    "max_drawdown_duration_bars", "max_drawdown_duration_days", "max_drawdown_pct",
    "max_trade_duration", "periods_per_year", "profit_factor", "return_ann_pct", "return_pct",
    "sharpe", "sharpe_per_bar", "sortino", "sortino_per_bar", "sqn", "trades",
    "volatility_pct", "win_rate_pct", "worst_trade_pct",
)  # fmt: skip
"""The numeric statistics every completed backtest stores in its metrics."""

Direction = Literal["maximize", "minimize"]


def check_statistic(metric: str, *, option: str = "metric") -> str:
    """`metric` if it is a stored statistic, else StrategyConfigError listing them."""
    if metric not in STATISTICS:
        raise StrategyConfigError(
            option, f"{metric!r} is not a stored statistic; one of {', '.join(STATISTICS)}"
        )
    return metric


def statistic(metrics: Mapping[str, Any] | None, metric: str) -> float | None:
    """The backtest's `metric` as a float (infinite too), or None where it has no value."""
    value = (metrics or {}).get(metric)
    if isinstance(value, str):  # a float too large for the store, kept as its text
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return None if math.isnan(number) else number


@dataclass(frozen=True, slots=True)
class Objective:
    """A stored statistic to make as large (maximize) or as small (minimize) as it goes."""

    metric: str
    direction: Direction = "maximize"

    def __post_init__(self) -> None:
        check_statistic(self.metric)
        if self.direction not in ("maximize", "minimize"):
            raise StrategyConfigError(
                "direction", f"must be maximize or minimize, got {self.direction!r}"
            )

    def value(self, metrics: Mapping[str, Any] | None) -> float | None:
        return statistic(metrics, self.metric)

    def better(self, value: float, than: float) -> bool:
        return value > than if self.direction == "maximize" else value < than
