"""The statistics backtesting.py 0.6's `run()` reports, with its definitions, in numpy.

Annualised figures come from calendar returns, as the peer computes them: the last equity of
each day (of each week, month or year for bars that far apart), the simple returns between
those, their geometric mean compounded over the trading days of a year. Drawdown episodes
run from one bar at a running peak to the next (or to the last bar); durations are rounded up
to the unit of the bars' spacing and given in days. A statistic with nothing to be computed
from (no trades, no losing day, one bar) is None; docs/backtest.md gives every definition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from quantflow_async.backtest.bars import FloatArray, IntArray
from quantflow_async.backtest.broker import ClosedTrade
from quantflow_async.validation import MICROS_PER_DAY

_SPACING_SAMPLE: Final = 100  # the peer measures the bars' spacing over the last 100 bars
# The units a spacing is rounded to, largest first, as pandas' Timedelta.resolution_string.
_UNITS_MICROS: Final = (MICROS_PER_DAY, 3_600_000_000, 60_000_000, 1_000_000, 1_000, 1)


def bar_spacing(times: IntArray) -> float | None:
    """The median spacing of the last 100 bars, in microseconds; None for one bar."""
    tail = times[-_SPACING_SAMPLE:]
    if len(tail) < 2:
        return None
    return float(np.median(np.diff(tail)))


def spacing_unit(spacing: float | None) -> int | None:
    """The largest unit that divides the spacing (a day, an hour, ...), in microseconds."""
    if spacing is None or not spacing.is_integer() or spacing <= 0:
        return None
    return next(unit for unit in _UNITS_MICROS if spacing % unit == 0)


def trading_days(times: IntArray, spacing: float | None) -> tuple[int, str]:
    """(periods in a year, calendar step): weekly 52 "W", monthly 12 "M", yearly 1 "Y",
    else daily "D" with 365 for a market open on weekends and 252 for one that is not."""
    whole_days = math.floor(spacing / MICROS_PER_DAY) if spacing is not None else 0
    if whole_days == 7:
        return 52, "W"
    if whole_days == 31:
        return 12, "M"
    if whole_days == 365:
        return 1, "Y"
    weekday = (times // MICROS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    on_weekends = float(np.mean(weekday >= 5))
    return (365 if on_weekends > 2 / 7 * 0.6 else 252), "D"


def calendar_returns(equity: FloatArray, times: IntArray, step: str) -> FloatArray:
    """Simple returns between the last equity of consecutive calendar steps holding a bar."""
    if step == "W":
        period = (times // MICROS_PER_DAY + 3) // 7  # weeks from Monday to Sunday
    else:
        unit = {"D": "D", "M": "M", "Y": "Y"}[step]
        period = times.astype("datetime64[us]").astype(f"datetime64[{unit}]").astype(np.int64)
    last = np.flatnonzero(np.diff(period, append=period[-1] + 1))
    closing = equity[last]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = closing[1:] / closing[:-1] - 1
    return np.asarray(returns[~np.isnan(returns)], dtype=np.float64)


def geometric_mean(returns: FloatArray) -> float:
    """The mean growth per period; 0 once any period lost everything, NaN without periods."""
    growth = np.nan_to_num(returns, nan=0.0) + 1
    if np.any(growth <= 0):
        return 0.0
    if not len(growth):
        return math.nan
    return float(np.exp(np.sum(np.log(growth)) / len(growth)) - 1)


def drawdown_episodes(equity: FloatArray, times: IntArray) -> tuple[FloatArray, FloatArray]:
    """Each drawdown's depth (a fraction) and its duration in microseconds, peak to the next
    bar at a peak or to the last bar. A drawdown of the last bar alone is the peer's special
    case: its depth counts, with no duration."""
    depth = 1 - equity / np.maximum.accumulate(equity)
    at_peak = np.unique(np.r_[np.flatnonzero(depth == 0), len(depth) - 1])
    starts, ends = at_peak[:-1], at_peak[1:]
    kept = ends > starts + 1
    if not np.any(kept):
        below = depth[depth != 0]
        return np.asarray(below, dtype=np.float64), np.empty(0, dtype=np.float64)
    deepest = np.maximum.reduceat(depth, starts + 1)[kept]
    durations = (times[ends[kept]] - times[starts[kept]]).astype(np.float64)
    return np.asarray(deepest, dtype=np.float64), durations


def rounded_days(micros: float, unit: int | None) -> float | None:
    """A duration rounded up to `unit`, in days; None for none."""
    if math.isnan(micros):
        return None
    if unit is not None:
        micros = math.ceil(micros / unit) * unit
    return micros / MICROS_PER_DAY


def trade_returns(trades: Sequence[ClosedTrade]) -> FloatArray:
    """Each trade's return on its entry value, net of its commissions (the peer's pl_pct)."""
    return np.array(
        [
            math.copysign(1, t.size) * (t.exit_price / t.entry_price - 1)
            - t.commission / (abs(t.size) * t.entry_price)
            for t in trades
        ],
        dtype=np.float64,
    )


def _or_nan(value: float) -> float:
    return value if value else math.nan


def _mean(values: FloatArray) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _max(values: FloatArray) -> float:
    return float(np.max(values)) if len(values) else math.nan


def peer_statistics(
    equity: FloatArray,
    times: IntArray,
    closes: FloatArray,
    trades: Sequence[ClosedTrade],
    *,
    first_trading_bar: int,
) -> dict[str, Any]:
    """The statistics of section "Metrics" of docs/backtest.md; NaN where there is nothing to
    compute from (the caller makes every value JSON-safe)."""
    spacing = bar_spacing(times)
    unit = spacing_unit(spacing)
    days_a_year, step = trading_days(times, spacing)
    returns = calendar_returns(equity, times, step)
    growth = np.float64(1 + geometric_mean(returns))  # numpy powers overflow to inf
    variance = np.var(returns, ddof=1) if len(returns) > 1 else np.float64(math.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        annual = float(growth**days_a_year - 1)
        volatility = float(
            np.sqrt((variance + growth**2) ** days_a_year - growth ** (2 * days_a_year))
        )
    downside = math.sqrt(_mean(np.minimum(returns, 0.0) ** 2)) * math.sqrt(days_a_year)
    depths, durations = drawdown_episodes(equity, times)
    max_drawdown = float(np.max(1 - equity / np.maximum.accumulate(equity)))

    pnl = np.array([t.pnl for t in trades], dtype=np.float64)
    trade_pct = trade_returns(trades)
    held = np.array([times[t.exit_bar] - times[t.entry_bar] for t in trades], dtype=np.float64)
    in_market = np.zeros(len(equity), dtype=bool)
    for t in trades:
        in_market[t.entry_bar : t.exit_bar + 1] = True
    win_rate = float(np.mean(pnl > 0)) if len(pnl) else math.nan
    # None when the indicators never warm up: no bar the strategy could have bought on
    start_close = float(closes[first_trading_bar]) if first_trading_bar < len(closes) else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        kelly_odds = _mean(pnl[pnl > 0]) / -_mean(pnl[pnl < 0])
        loss_pct = abs(float(np.sum(trade_pct[trade_pct < 0])))
        return {
            "buy_hold_return_pct": (float(closes[-1]) - start_close) / start_close * 100,
            "return_ann_pct": annual * 100,
            "volatility_pct": volatility * 100,
            "sharpe": annual * 100 / _or_nan(volatility * 100),
            "sortino": annual / downside if downside and not math.isnan(downside) else math.nan,
            "calmar": annual / _or_nan(max_drawdown),
            "avg_drawdown_pct": -_mean(depths) * 100,
            "max_drawdown_duration": rounded_days(_max(durations), unit),
            "avg_drawdown_duration": rounded_days(_mean(durations), unit),
            "exposure_pct": float(np.mean(in_market)) * 100,
            "win_rate_pct": win_rate * 100,
            "best_trade_pct": _max(trade_pct) * 100,
            "worst_trade_pct": -_max(-trade_pct) * 100,
            "avg_trade_pct": geometric_mean(trade_pct) * 100 if len(trade_pct) else math.nan,
            "max_trade_duration": rounded_days(_max(held), unit),
            "avg_trade_duration": rounded_days(_mean(held), unit),
            "profit_factor": float(np.sum(trade_pct[trade_pct > 0])) / _or_nan(loss_pct),
            "expectancy_pct": _mean(trade_pct) * 100,
            "sqn": math.sqrt(len(pnl)) * _mean(pnl) / _or_nan(_sample_std(pnl)),
            "kelly": win_rate - (1 - win_rate) / kelly_odds,
            "equity_peak": float(np.max(equity)),
        }


def calendar_years(times: IntArray) -> float:
    """The span of `times` in years of 365.25 days, counted in whole seconds as the peer does."""
    return (int(times[-1]) - int(times[0])) // 1_000_000 / 86_400 / 365.25


def _sample_std(values: FloatArray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
