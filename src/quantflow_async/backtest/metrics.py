"""Performance metrics of a finished backtest: pure functions of its equity curve and trades.

Conventions (docs/backtest.md gives the reasons): returns are simple per-bar returns of
close-of-bar equity; Sharpe and Sortino are annualised with a risk-free rate of 0; drawdowns
are reported as negative percentages; undefined values (no trades, no losses) are None, so
every metric is JSON-safe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quantflow_async.backtest.bars import FloatArray, IntArray, utc_datetime
from quantflow_async.backtest.broker import ClosedTrade, Execution
from quantflow_async.backtest.statistics import calendar_years, peer_statistics
from quantflow_async.validation import MICROS_PER_DAY

DAYS_PER_YEAR: Final = 365.25
MAX_CURVE_POINTS: Final = 10_000


def periods_per_year(times: IntArray) -> float | None:
    """Bars per year, from the median spacing of `times` (UTC epoch microseconds).

    Daily bars: 252 when the series skips weekends (a stock exchange), 365 when it trades on
    them (crypto), told apart as backtesting.py does. Weekly and longer: 365.25 days over the
    spacing, rounded (52, 12, 4, 1). Shorter than a day: 365 days over the spacing, that is,
    a market open around the clock. None for fewer than two bars.
    """
    if len(times) < 2:
        return None
    days = float(np.median(np.diff(times))) / MICROS_PER_DAY
    if days < 1:
        return 365 / days
    if days < 7:
        weekday = (times // MICROS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
        on_weekends = float(np.mean(weekday >= 5))
        return 365.0 if on_weekends > 2 / 7 * 0.6 else 252.0
    return float(round(DAYS_PER_YEAR / days))


def bar_returns(equity: FloatArray) -> FloatArray:
    """Simple returns from one bar's equity to the next; 0 once the account is at 0."""
    previous = equity[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.where(previous > 0, equity[1:] / previous - 1, 0.0)
    return np.asarray(returns, dtype=np.float64)


def sharpe_ratio(returns: FloatArray, periods: float | None) -> float | None:
    """mean / sample standard deviation (ddof=1) of per-bar returns, times sqrt(periods)."""
    if periods is None or len(returns) < 2:
        return None
    deviation = float(np.std(returns, ddof=1))
    if deviation == 0:
        return None
    return float(np.mean(returns)) / deviation * math.sqrt(periods)


def sortino_ratio(returns: FloatArray, periods: float | None) -> float | None:
    """mean / downside deviation of per-bar returns, times sqrt(periods).

    The downside deviation is sqrt(mean(min(r, 0)^2)) over every bar, target return 0.
    """
    if periods is None or len(returns) < 1:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside == 0:
        return None
    return float(np.mean(returns)) / downside * math.sqrt(periods)


def max_drawdown_pct(equity: FloatArray) -> float:
    """The deepest fall from a running peak, in percent of that peak, as a number <= 0."""
    peaks = np.maximum.accumulate(equity)
    return -float(np.max(1 - equity / peaks)) * 100 + 0.0  # + 0.0 turns -0.0 into 0.0


def drawdown_episodes(
    equity: FloatArray,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Every drawdown as (peak, trough, end) bar indices, in time order.

    A drawdown starts after a bar at its running peak (`peak`) and lasts while equity is
    below it; `end` is the bar that regains the peak, or the last bar if none does.
    """
    below = equity < np.maximum.accumulate(equity)
    edges = np.diff(below.astype(np.int8), prepend=0, append=0)
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    if not len(starts):
        empty = np.empty(0, dtype=np.intp)
        return empty, empty, empty
    # Each episode's bars are one run of `below`, in order: its trough is the first bar of
    # the run at the run's lowest equity, found in one pass rather than by sorting.
    positions = np.flatnonzero(below)
    values = equity[positions]
    lengths = stops - starts
    run_starts = np.concatenate(([0], np.cumsum(lengths[:-1])))
    lowest = np.minimum.reduceat(values, run_starts)
    at_lowest = np.flatnonzero(values == np.repeat(lowest, lengths))
    episode = np.repeat(np.arange(len(starts)), lengths)[at_lowest]
    first = np.concatenate(([True], episode[1:] != episode[:-1]))
    troughs = positions[at_lowest[first]]
    ends = np.minimum(stops, len(equity) - 1)
    return starts - 1, troughs, ends


def max_drawdown_duration(equity: FloatArray, times: IntArray) -> tuple[int, float]:
    """The longest drawdown, peak to recovery (or to the last bar): (bars, days)."""
    peaks, _, ends = drawdown_episodes(equity)
    if not len(peaks):
        return 0, 0.0
    bars = int(np.max(ends - peaks))
    days = float(np.max(times[ends] - times[peaks])) / MICROS_PER_DAY
    return bars, days


def cagr_pct(initial: float, final: float, years: float) -> float | None:
    """Compound annual growth rate in percent; None over a span of no time, inf past a float."""
    if years <= 0:
        return None
    if final <= 0:
        return -100.0
    try:
        growth: float = (final / initial) ** (1 / years)
    except OverflowError:  # a gain over minutes, compounded to a year: stored as None
        return math.inf
    return (growth - 1) * 100


def win_rate_pct(trades: Sequence[ClosedTrade]) -> float | None:
    """Closed trades with a net pnl > 0, in percent; None without closed trades."""
    if not trades:
        return None
    return sum(1 for t in trades if t.pnl > 0) / len(trades) * 100


def compute_metrics(
    equity: FloatArray,
    times: IntArray,
    trades: Sequence[ClosedTrade],
    executions: Sequence[Execution],
    *,
    cash: float,
    closes: FloatArray,
    first_trading_bar: int = 0,
    periods: float | None = None,
) -> dict[str, Any]:
    """Every metric of a run, as JSON-safe values; `periods` overrides the bars per year of
    the per-bar ratios. `first_trading_bar` is the first bar the strategy could trade on (after
    its indicators' warm-up), where buy and hold starts."""
    final = float(equity[-1])
    periods = periods if periods is not None else periods_per_year(times)
    returns = bar_returns(equity)
    duration_bars, duration_days = max_drawdown_duration(equity, times)
    metrics: dict[str, Any] = {
        "start": _iso(times[0]),
        "end": _iso(times[-1]),
        "bars": len(equity),
        "trades": len(trades),
        "final_equity": final,
        "return_pct": (final - cash) / cash * 100,
        "cagr_pct": cagr_pct(cash, final, calendar_years(times)),
        "max_drawdown_pct": max_drawdown_pct(equity),
        "max_drawdown_duration_bars": duration_bars,
        "max_drawdown_duration_days": duration_days,
        "fees": sum(e.commission for e in executions),
        **peer_statistics(equity, times, closes, trades, first_trading_bar=first_trading_bar),
        "sharpe_per_bar": sharpe_ratio(returns, periods),
        "sortino_per_bar": sortino_ratio(returns, periods),
        "periods_per_year": periods,
    }
    return {key: _json_safe(value) for key, value in metrics.items()}


def per_symbol(
    trades: Sequence[ClosedTrade], executions: Sequence[Execution]
) -> dict[str, dict[str, Any]]:
    """For each symbol: closed trades, their net pnl, win rate, and the fees of all executions."""
    symbols = sorted({e.symbol for e in executions} | {t.symbol for t in trades})
    breakdown: dict[str, dict[str, Any]] = {}
    for symbol in symbols:
        closed = [t for t in trades if t.symbol == symbol]
        breakdown[symbol] = {
            "trades": len(closed),
            "pnl": sum(t.pnl for t in closed),
            "win_rate_pct": _json_safe(win_rate_pct(closed)),
            "fees": sum(e.commission for e in executions if e.symbol == symbol),
        }
    return breakdown


Episodes = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]


def downsample(
    equity: FloatArray, max_points: int = MAX_CURVE_POINTS, *, episodes: Episodes | None = None
) -> npt.NDArray[np.intp]:
    """Indices of at most `max_points` bars that keep the curve's shape and its drawdowns.

    Kept: the first and last bar, the peak and trough of every drawdown (of the deepest
    ones, when their pairs would take more than half the budget), and evenly spaced bars for
    the rest. Drawdowns measured on the kept points equal those of the full curve for every
    kept pair, so the maximum drawdown is always preserved. `episodes` are the curve's
    `drawdown_episodes`, when the caller has them already.
    """
    count = len(equity)
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    if count <= max_points:
        return np.arange(count, dtype=np.intp)
    peaks, troughs, _ = drawdown_episodes(equity) if episodes is None else episodes
    pairs = len(peaks)
    if 2 * pairs + 2 > max_points:
        pairs = (max_points - 2) // 4
        depth = 1 - equity[troughs] / equity[peaks]
        deepest = np.sort(np.argsort(-depth, kind="stable")[:pairs])
        peaks, troughs = peaks[deepest], troughs[deepest]
    must = np.unique(np.concatenate(([0, count - 1], peaks, troughs)))
    spare = max_points - len(must)
    even = np.linspace(0, count - 1, num=spare, dtype=np.intp) if spare > 0 else must[:0]
    return np.union1d(must, even).astype(np.intp)  # at most len(must) + spare = max_points


def _iso(micros: np.int64) -> str:
    return utc_datetime(int(micros)).isoformat()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
