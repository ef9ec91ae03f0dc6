"""The broker's execution rules, each on a few hand-made bars (docs/backtest.md lists them)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from quantflow_async.backtest import run_backtest, synthetic_bars

from .support import flat_bars, make_bars, scripted

# open, high, low, close
RISING = [
    (100, 101, 99, 100),
    (100, 102, 99, 101),
    (102, 106, 101, 105),
    (105, 109, 104, 108),
    (108, 112, 107, 111),
]


def test_market_order_fills_at_next_bar_open() -> None:
    result = run_backtest(scripted({1: [("buy", {"size": 3})]}), make_bars(RISING))
    (fill,) = result.executions
    assert (fill.bar, fill.side, fill.quantity, fill.price) == (2, "buy", 3, 102.0)


def test_execution_time_is_the_fill_bar_time_in_utc() -> None:
    result = run_backtest(scripted({1: [("buy", {"size": 3})]}), make_bars(RISING))
    assert result.executions[0].time == datetime(2024, 1, 3, tzinfo=UTC)


def test_order_placed_on_the_last_bar_never_fills() -> None:
    result = run_backtest(scripted({4: [("buy", {"size": 1})]}), make_bars(RISING))
    assert result.executions == ()
    assert result.metrics["final_equity"] == 10_000


def test_limit_buy_fills_at_the_limit_when_the_low_trades_through_it() -> None:
    result = run_backtest(scripted({2: [("buy", {"size": 1, "limit": 104.5})]}), make_bars(RISING))
    (fill,) = result.executions
    assert (fill.bar, fill.price) == (3, 104.5)  # bar 3 opens at 105 and trades down to 104


def test_limit_buy_fills_at_the_open_when_the_bar_opens_below_the_limit() -> None:
    result = run_backtest(scripted({1: [("buy", {"size": 1, "limit": 103})]}), make_bars(RISING))
    (fill,) = result.executions
    assert (fill.bar, fill.price) == (2, 102.0)


def test_limit_order_waits_until_the_price_reaches_it() -> None:
    bars = make_bars([*RISING, (111, 111, 95, 96)])
    result = run_backtest(scripted({1: [("buy", {"size": 1, "limit": 99})]}), bars)
    (fill,) = result.executions
    assert (fill.bar, fill.price) == (5, 99.0)


def test_limit_sell_fills_when_the_high_trades_through_it() -> None:
    result = run_backtest(scripted({1: [("sell", {"size": 2, "limit": 107})]}), make_bars(RISING))
    (fill,) = result.executions
    assert (fill.bar, fill.side, fill.price) == (3, "sell", 107.0)


def test_commission_is_paid_at_entry_and_again_at_exit() -> None:
    plan = {1: [("buy", {"size": 10})], 3: [("close", {})]}
    result = run_backtest(scripted(plan), make_bars(RISING), commission=0.01)
    entry, exit_ = result.executions
    assert entry.commission == pytest.approx(10 * 102 * 0.01)
    assert exit_.commission == pytest.approx(10 * 108 * 0.01)
    (trade,) = result.trades
    assert trade.commission == pytest.approx(10.2 + 10.8)
    assert trade.pnl == pytest.approx(10 * (108 - 102) - 21.0)
    assert result.metrics["final_equity"] == pytest.approx(10_000 + 60 - 21)


def test_default_size_is_all_cash_in_whole_units_net_of_commission() -> None:
    result = run_backtest(
        scripted({1: [("buy", {})]}), make_bars(RISING), cash=1_000, commission=0.01
    )
    # int(1000 * (1 - 2**-52) // (102 + 102 * 0.01)) = int(999.99... // 103.02) = 9
    assert result.executions[0].quantity == 9


def test_default_size_buys_the_last_unit_the_cash_exactly_pays_for() -> None:
    result = run_backtest(scripted({1: [("buy", {})]}), flat_bars(4), cash=1_000)
    # 1000 // 100 would be 10, but the peer keeps a hair below all of it: 9 units
    assert result.executions[0].quantity == 9


def test_fractional_size_is_that_share_of_equity_in_whole_units() -> None:
    result = run_backtest(scripted({1: [("buy", {"size": 0.5})]}), make_bars(RISING), cash=1_000)
    assert result.executions[0].quantity == 4  # int(500 // 102)


def test_order_the_cash_cannot_pay_for_is_cancelled_not_shrunk() -> None:
    result = run_backtest(scripted({1: [("buy", {"size": 50})]}), make_bars(RISING), cash=1_000)
    assert result.executions == ()
    assert result.cancelled_orders == 1


def test_exclusive_orders_close_the_position_before_the_new_order() -> None:
    plan = {1: [("buy", {"size": 5})], 2: [("sell", {"size": 3})]}
    result = run_backtest(scripted(plan), make_bars(RISING))
    assert [(e.bar, e.side, e.quantity) for e in result.executions] == [
        (2, "buy", 5),
        (3, "sell", 5),  # the long closed first...
        (3, "sell", 3),  # ...then the new short
    ]
    assert result.position == -3


def test_without_exclusive_orders_an_opposite_order_closes_lots_fifo() -> None:
    plan = {1: [("buy", {"size": 2})], 2: [("buy", {"size": 3})], 3: [("sell", {"size": 4})]}
    result = run_backtest(scripted(plan), make_bars(RISING), exclusive_orders=False)
    first, second = result.trades
    assert (first.size, first.entry_price, first.exit_price) == (2, 102.0, 108.0)  # oldest lot
    assert (second.size, second.entry_price, second.exit_price) == (2, 105.0, 108.0)
    assert result.position == 1
    assert result.executions[-1].pnl == pytest.approx(2 * 6 + 2 * 3)


def test_short_position_gains_when_the_price_falls() -> None:
    falling = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 90, 90), (90, 90, 80, 80)]
    result = run_backtest(
        scripted({1: [("sell", {"size": 10})], 2: [("close", {})]}), make_bars(falling)
    )
    (trade,) = result.trades
    assert (trade.size, trade.pnl) == (-10, 10 * (100 - 90))
    assert result.metrics["final_equity"] == 10_100


def test_open_position_counts_in_final_equity_but_is_not_a_trade() -> None:
    result = run_backtest(
        scripted({1: [("buy", {"size": 10})]}), make_bars(RISING), commission=0.01
    )
    assert result.trades == ()
    assert result.metrics["trades"] == 0
    assert result.position == 10
    # marked at the last close; entry commission paid, exit commission not
    assert result.metrics["final_equity"] == pytest.approx(10_000 - 10.2 + 10 * (111 - 102))


def test_account_out_of_money_is_closed_at_the_close_and_stays_at_zero() -> None:
    squeeze = [(100, 100, 100, 100)] * 3 + [(100, 260, 100, 250), (250, 250, 250, 250)]
    result = run_backtest(scripted({1: [("sell", {})]}), make_bars(squeeze), cash=1_000)
    assert [(e.bar, e.side, e.quantity, e.price) for e in result.executions] == [
        (2, "sell", 9, 100.0),
        (3, "buy", 9, 250.0),  # closed at the close of the bar equity went below zero
    ]
    assert result.equity.tolist() == [1_000, 1_000, 1_000, 0, 0]


def test_slippage_moves_market_fills_against_the_trader() -> None:
    plan = {1: [("buy", {"size": 1})], 2: [("close", {})]}
    result = run_backtest(scripted(plan), make_bars(RISING), slippage=0.01)
    buy, sell = result.executions
    assert buy.price == pytest.approx(102 * 1.01)
    assert sell.price == pytest.approx(105 * 0.99)


def test_limit_orders_are_not_slipped() -> None:
    plan = {1: [("buy", {"size": 1, "limit": 103})]}
    result = run_backtest(scripted(plan), make_bars(RISING), slippage=0.01)
    assert result.executions[0].price == 102.0


def test_executions_are_numbered_and_carry_realized_pnl_on_closing() -> None:
    plan = {1: [("buy", {"size": 10})], 3: [("close", {})]}
    result = run_backtest(scripted(plan), make_bars(RISING), commission=0.01)
    entry, exit_ = result.executions
    assert (entry.sequence, entry.pnl) == (1, None)
    assert (exit_.sequence, exit_.pnl) == (2, pytest.approx(60.0))  # before commissions
    assert exit_.external_id(42) == "backtest-42-2"


def test_equity_is_cash_plus_realized_pnl_less_every_commission_plus_the_open_lot() -> None:
    bars = synthetic_bars(2_000, seed=5)
    result = run_backtest("sma_cross", bars, commission=0.002)
    assert len(result.executions) > 10
    realized = sum(e.pnl or 0.0 for e in result.executions)
    fees = sum(e.commission for e in result.executions)
    opening = result.executions[-1]  # with exclusive orders, the open lot is the last fill
    assert opening.quantity == abs(result.position)
    unrealized = result.position * (bars.close[-1] - opening.price)
    assert result.metrics["fees"] == pytest.approx(fees)
    assert result.metrics["final_equity"] == pytest.approx(10_000 + realized - fees + unrealized)
