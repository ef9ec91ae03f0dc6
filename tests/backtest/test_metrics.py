"""Every metric against hand arithmetic on ten bars, and the equity curve's downsampling."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantflow_async.backtest import run_backtest, synthetic_bars
from quantflow_async.backtest.metrics import (
    downsample,
    drawdown_episodes,
    max_drawdown_pct,
    periods_per_year,
)

from .support import make_bars, scripted

# Ten weekdays from Monday 2024-01-01 to Friday 2024-01-12: open, high, low, close.
TEN_BARS = [
    (100, 101, 99, 100),
    (100, 102, 99, 101),  # next: buy 10
    (102, 106, 101, 105),  # bought 10 at 102
    (105, 109, 104, 108),
    (108, 108, 95, 96),  # next: close
    (98, 99, 94, 95),  # sold 10 at 98; next: sell 5
    (95, 97, 90, 92),  # short 5 at 95
    (92, 93, 85, 86),  # next: close
    (88, 90, 87, 89),  # bought back 5 at 88; next: buy 2
    (90, 92, 89, 91),  # bought 2 at 90, still open at the end
]
PLAN = {
    1: [("buy", {"size": 10})],
    4: [("close", {})],
    5: [("sell", {"size": 5})],
    7: [("close", {})],
    8: [("buy", {"size": 2})],
}

# Cash 10,000, commission 1% of notional at each execution:
#   bar 2  buy 10 @102, fee 10.20      cash 9989.80   equity 9989.80 + 10*(105-102) = 10019.80
#   bar 3                                             equity 9989.80 + 10*(108-102) = 10049.80
#   bar 4                                             equity 9989.80 + 10*(96-102)  =  9929.80
#   bar 5  sell 10 @98, fee 9.80, gross -40.00   cash 9940.00   equity 9940.00
#          trade 1: -40 - (10.20 + 9.80) = -60.00
#   bar 6  sell 5 @95, fee 4.75        cash 9935.25   equity 9935.25 - 5*(92-95)    =  9950.25
#   bar 7                                             equity 9935.25 - 5*(86-95)    =  9980.25
#   bar 8  buy 5 @88, fee 4.40, gross +35.00     cash 9965.85   equity 9965.85
#          trade 2: 35 - (4.75 + 4.40) = 25.85
#   bar 9  buy 2 @90, fee 1.80         cash 9964.05   equity 9964.05 + 2*(91-90)    =  9966.05
EQUITY = [
    10_000,
    10_000,
    10_019.80,
    10_049.80,
    9_929.80,
    9_940.00,
    9_950.25,
    9_980.25,
    9_965.85,
    9_966.05,
]


@pytest.fixture(scope="module")
def metrics() -> dict[str, object]:
    result = run_backtest(scripted(PLAN), make_bars(TEN_BARS), cash=10_000, commission=0.01)
    assert result.equity.tolist() == pytest.approx(EQUITY)
    return result.metrics


def test_final_equity_includes_the_open_position_at_the_last_close(metrics: dict) -> None:
    assert metrics["final_equity"] == pytest.approx(9_966.05)


def test_return_is_final_over_starting_cash(metrics: dict) -> None:
    assert metrics["return_pct"] == pytest.approx((9_966.05 - 10_000) / 10_000 * 100)  # -0.3395


def test_cagr_compounds_over_the_calendar_span(metrics: dict) -> None:
    years = 11 / 365.25  # 2024-01-01 to 2024-01-12
    assert metrics["cagr_pct"] == pytest.approx(((9_966.05 / 10_000) ** (1 / years) - 1) * 100)


def test_only_closed_trades_count(metrics: dict) -> None:
    assert metrics["trades"] == 2  # the last buy is still open


def test_win_rate_counts_net_pnl_above_zero(metrics: dict) -> None:
    assert metrics["win_rate_pct"] == 50.0  # -60.00 lost, +25.85 won


# Each trade's return on its entry value, net of both commissions (the peer's Trade.pl_pct):
#   trade 1, long 10 @102 -> 98:  (98 / 102 - 1) - 20.00 / (10 * 102) = -5.882%
#   trade 2, short 5 @95 -> 88:  -(88 / 95 - 1) - 9.15 / (5 * 95)    = +5.442%
TRADE_RETURNS = [(98 / 102 - 1) - 20.00 / 1020, -(88 / 95 - 1) - 9.15 / 475]


def test_profit_factor_is_winning_returns_over_losing_returns(metrics: dict) -> None:
    assert metrics["profit_factor"] == pytest.approx(TRADE_RETURNS[1] / -TRADE_RETURNS[0])


def test_trade_statistics_are_of_the_trades_returns(metrics: dict) -> None:
    assert metrics["best_trade_pct"] == pytest.approx(TRADE_RETURNS[1] * 100)
    assert metrics["worst_trade_pct"] == pytest.approx(TRADE_RETURNS[0] * 100)
    assert metrics["expectancy_pct"] == pytest.approx(statistics.mean(TRADE_RETURNS) * 100)
    geometric = math.sqrt((1 + TRADE_RETURNS[0]) * (1 + TRADE_RETURNS[1])) - 1
    assert metrics["avg_trade_pct"] == pytest.approx(geometric * 100)


def test_sqn_and_kelly_are_of_the_trades_net_pnl(metrics: dict) -> None:
    pnl = [-60.00, 25.85]
    assert metrics["sqn"] == pytest.approx(
        math.sqrt(2) * statistics.mean(pnl) / statistics.stdev(pnl)
    )
    assert metrics["kelly"] == pytest.approx(0.5 - 0.5 / (25.85 / 60.00))


def test_trade_durations_are_in_days_rounded_up_to_the_bars_spacing(metrics: dict) -> None:
    # trade 1: Wednesday 3rd to Monday 8th (5 days); trade 2: Tuesday 9th to Thursday 11th (2)
    assert metrics["max_trade_duration"] == 5.0
    assert metrics["avg_trade_duration"] == 4.0  # 3.5 days, rounded up to whole days


def test_fees_are_every_commission_paid(metrics: dict) -> None:
    assert metrics["fees"] == pytest.approx(10.20 + 9.80 + 4.75 + 4.40 + 1.80)  # 30.95


def test_max_drawdown_is_the_deepest_fall_from_a_peak(metrics: dict) -> None:
    # peak 10,049.80 on bar 3, trough 9,929.80 on bar 4
    assert metrics["max_drawdown_pct"] == pytest.approx(-(1 - 9_929.80 / 10_049.80) * 100)  # -1.19


def test_drawdown_duration_runs_from_the_peak_to_the_last_bar_when_never_regained(
    metrics: dict,
) -> None:
    assert metrics["max_drawdown_duration_bars"] == 9 - 3
    assert metrics["max_drawdown_duration_days"] == 8.0  # Thursday 4th to Friday 12th


def test_exposure_counts_the_bars_of_closed_trades_entry_to_exit(metrics: dict) -> None:
    # trade 1 on bars 2 to 5, trade 2 on bars 6 to 8; the open position is no trade: 7 of 10
    assert metrics["exposure_pct"] == 70.0


def test_buy_and_hold_runs_from_the_first_bar_the_strategy_could_trade(metrics: dict) -> None:
    assert metrics["buy_hold_return_pct"] == pytest.approx((91 / 100 - 1) * 100)


def test_the_equity_peak_is_the_highest_close_of_bar_equity(metrics: dict) -> None:
    assert metrics["equity_peak"] == pytest.approx(10_049.80)


def test_daily_bars_without_weekends_annualise_with_252(metrics: dict) -> None:
    assert metrics["periods_per_year"] == 252.0


def bar_returns_by_hand() -> list[float]:
    return [b / a - 1 for a, b in zip(EQUITY, EQUITY[1:], strict=False)]


def test_sharpe_per_bar_is_mean_over_sample_deviation_of_bar_returns_annualised(
    metrics: dict,
) -> None:
    returns = bar_returns_by_hand()  # 0, +0.198%, +0.299%, -1.194%, +0.103%, ...
    expected = statistics.mean(returns) / statistics.stdev(returns) * math.sqrt(252)
    assert metrics["sharpe_per_bar"] == pytest.approx(expected)


def test_sortino_per_bar_divides_by_the_downside_deviation(metrics: dict) -> None:
    returns = bar_returns_by_hand()
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in returns) / len(returns))
    expected = statistics.mean(returns) / downside * math.sqrt(252)
    assert metrics["sortino_per_bar"] == pytest.approx(expected)


def test_sharpe_is_the_compounded_annual_return_over_the_annual_volatility(
    metrics: dict,
) -> None:
    daily = bar_returns_by_hand()  # one bar a day: the daily returns are the bar returns
    growth = math.prod(1 + r for r in daily) ** (1 / len(daily))
    annual = growth**252 - 1
    volatility = math.sqrt((statistics.variance(daily) + growth**2) ** 252 - growth ** (2 * 252))
    assert metrics["return_ann_pct"] == pytest.approx(annual * 100)
    assert metrics["volatility_pct"] == pytest.approx(volatility * 100)
    assert metrics["sharpe"] == pytest.approx(annual / volatility)
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in daily) / len(daily)) * math.sqrt(252)
    assert metrics["sortino"] == pytest.approx(annual / downside)
    assert metrics["calmar"] == pytest.approx(annual / (1 - 9_929.80 / 10_049.80))


def test_every_metric_is_json_safe(metrics: dict) -> None:
    import json

    assert json.loads(json.dumps(metrics, allow_nan=False)) == metrics


def test_undefined_metrics_are_none_not_nan() -> None:
    flat = run_backtest(scripted({}), make_bars(TEN_BARS[:3])).metrics
    assert flat["trades"] == 0
    assert flat["win_rate_pct"] is None
    assert flat["profit_factor"] is None
    assert flat["sharpe"] is None  # no variation at all
    for key in ("sqn", "kelly", "best_trade_pct", "avg_trade_pct", "max_trade_duration"):
        assert flat[key] is None, key
    assert flat["max_drawdown_pct"] == 0.0


def test_per_symbol_breakdown_sums_the_closed_trades() -> None:
    result = run_backtest(
        scripted(PLAN), make_bars(TEN_BARS), cash=10_000, commission=0.01, symbol="GOOG"
    )
    assert result.by_symbol == {
        "GOOG": {
            "trades": 2,
            "pnl": pytest.approx(-60.00 + 25.85),
            "win_rate_pct": 50.0,
            "fees": pytest.approx(30.95),
        }
    }


def test_weekend_daily_bars_annualise_with_365() -> None:
    bars = make_bars(TEN_BARS, weekdays=False)
    assert periods_per_year(bars.times) == 365.0


def test_intraday_bars_annualise_around_the_clock() -> None:
    from datetime import timedelta

    bars = synthetic_bars(100, interval=timedelta(hours=1))
    assert periods_per_year(bars.times) == pytest.approx(365 * 24)


def test_drawdown_episodes_give_each_peak_trough_and_end() -> None:
    equity = np.array([10, 12, 9, 11, 13, 13, 12, 8, 9], dtype=float)
    peaks, troughs, ends = drawdown_episodes(equity)
    assert peaks.tolist() == [1, 5]
    assert troughs.tolist() == [2, 7]
    assert ends.tolist() == [4, 8]  # regained on bar 4; the second never is


def _episodes_bar_by_bar(equity: list[float]) -> list[tuple[int, int, int]]:
    """drawdown_episodes written as its definition reads: (peak, trough, end) of each run of
    bars below the running peak, the trough the first bar at the run's lowest equity."""
    found: list[tuple[int, int, int]] = []
    peak, run = equity[0], None
    for bar, value in enumerate(equity):
        if value < peak:
            if run is None:
                run = [bar - 1, bar]
            elif value < equity[run[1]]:
                run[1] = bar
        else:
            if run is not None:
                found.append((run[0], run[1], bar))
                run = None
            peak = value
    if run is not None:
        found.append((run[0], run[1], len(equity) - 1))
    return found


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([1.0, 2.0, 2.5, 3.0, 4.0]) | st.floats(0.5, 100.0), min_size=1,
                max_size=60))  # fmt: skip
def test_drawdown_episodes_are_those_found_bar_by_bar(equity: list[float]) -> None:
    peaks, troughs, ends = drawdown_episodes(np.array(equity))
    assert list(zip(peaks.tolist(), troughs.tolist(), ends.tolist(), strict=True)) == (
        _episodes_bar_by_bar(equity)
    )


def test_downsampled_curve_is_within_the_budget_and_keeps_the_drawdown() -> None:
    bars = synthetic_bars(120_000, seed=2)
    result = run_backtest("sma_cross", bars, {"fast": 5, "slow": 30}, commission=0.001)
    curve = result.equity_curve(10_000)
    assert len(curve) <= 10_000
    assert curve[0][0] == bars.time_at(0) and curve[-1][0] == bars.time_at(len(bars) - 1)
    values = np.array([value for _, value in curve])
    assert max_drawdown_pct(values) == pytest.approx(result.metrics["max_drawdown_pct"])


def test_downsampling_keeps_every_trough_when_they_fit() -> None:
    rng = np.random.default_rng(4)
    equity = 1000 * np.exp(np.cumsum(rng.normal(0, 0.01, 50_000)))
    _, troughs, _ = drawdown_episodes(equity)
    kept = downsample(equity, 10_000)
    assert 2 * len(troughs) + 2 <= 10_000  # the case this test is about
    assert set(troughs.tolist()) <= set(kept.tolist())
    assert len(kept) <= 10_000


def test_short_curves_are_kept_whole() -> None:
    assert downsample(np.arange(5, dtype=float) + 1, 10).tolist() == [0, 1, 2, 3, 4]


def test_curve_times_are_utc_datetimes() -> None:
    result = run_backtest(scripted({}), make_bars(TEN_BARS[:2]))
    assert result.equity_curve()[0] == (datetime(2024, 1, 1, tzinfo=UTC), 10_000.0)
