"""Orders, brackets and trades agree with backtesting.py 0.6: each rule of docs/backtest.md's
"Orders and trades" run by both engines on the peer's GOOG bars and on a synthetic walk with
gaps, compared trade by trade and bar by bar (equity to 1e-9 relative)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from .peer_support import DATA, Decide, assert_same_run, crossings, run_both

CROSS = {name: crossings(frame) for name, frame in DATA.items()}


@pytest.fixture(params=sorted(DATA))
def data(request: pytest.FixtureRequest) -> tuple[pd.DataFrame, list[int]]:
    return DATA[request.param], CROSS[request.param]


def check(decide: Decide, frame: pd.DataFrame, **options: Any) -> None:
    peer, ours = run_both(decide, frame, **options)
    assert len(ours.trades) >= 10, "the case trades too little to show anything"
    assert_same_run(peer, ours)


def test_market_entries_with_sl_and_tp_brackets(data: tuple[pd.DataFrame, list[int]]) -> None:
    # Tight brackets: many are hit on the bar the trade opens (the second pass over a bar).
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] > 0 and not s.position:
            s.buy(sl=close * 0.98, tp=close * 1.03, tag="long")
        elif cross[i] < 0 and not s.position:
            s.sell(sl=close * 1.02, tp=close * 0.97, tag="short")

    check(decide, frame)


def test_stop_entries_trigger_on_the_high_or_low_and_gap_to_the_open(
    data: tuple[pd.DataFrame, list[int]],
) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i]:
            s.position.close()
            for order in s.orders:
                if not order.is_contingent and order.parent_trade is None:
                    order.cancel()
            if cross[i] > 0:
                s.buy(stop=close * 1.01, sl=close * 0.95)
            else:
                s.sell(stop=close * 0.99, sl=close * 1.05)

    check(decide, frame)


def test_stop_limit_entries(data: tuple[pd.DataFrame, list[int]]) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] > 0 and not s.position:
            s.buy(stop=close * 1.005, limit=close * 1.01, tp=close * 1.06, sl=close * 0.96)
        elif cross[i] < 0 and not s.position:
            s.sell(stop=close * 0.995, limit=close * 0.99, tp=close * 0.94, sl=close * 1.04)
        for order in s.orders:  # a day's entry: what has not filled by the next cross goes
            if cross[i] and not order.is_contingent and order.stop is None:
                order.cancel()

    check(decide, frame)


def test_limit_entries_with_take_profit(data: tuple[pd.DataFrame, list[int]]) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] > 0:
            s.buy(limit=close * 0.995, tp=close * 1.02, size=0.5)
        elif cross[i] < 0:
            s.sell(limit=close * 1.005, tp=close * 0.98, size=0.5)

    check(decide, frame)


def test_trailing_stop_loss(data: tuple[pd.DataFrame, list[int]]) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] > 0 and not s.position:
            s.buy()
        elif cross[i] < 0 and not s.position:
            s.sell()

    peer, ours = run_both(decide, frame, trailing=2.0)
    assert len(ours.trades) >= 10
    assert_same_run(peer, ours)


def test_moving_and_removing_a_trades_sl_and_tp(data: tuple[pd.DataFrame, list[int]]) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        for trade in s.trades:
            if i - trade.entry_bar == 3:
                trade.tp = None
                trade.sl = trade.entry_price  # to break even
            elif i - trade.entry_bar == 8:
                trade.sl = None
                trade.close()
        if cross[i] > 0:
            s.buy(size=0.3, sl=close * 0.9, tp=close * 1.05)

    check(decide, frame)


def test_partial_closes_of_trades_and_of_the_position(
    data: tuple[pd.DataFrame, list[int]],
) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] > 0:
            s.buy(size=17, tp=close * 1.08)
        elif cross[i] < 0:
            s.position.close(0.3)
        for trade in s.trades:
            if trade.pl_pct > 0.03:
                trade.close(0.5)
        if s.position and s.position.pl_pct < -4:
            s.position.close()

    check(decide, frame)


def test_margin_with_trade_on_close(data: tuple[pd.DataFrame, list[int]]) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] > 0:
            s.buy(size=0.9)
        elif cross[i] < 0:
            s.sell(size=0.9, sl=close * 1.1)

    check(decide, frame, margin=0.5, trade_on_close=True, exclusive_orders=True)


def test_finalize_trades_closes_what_is_open_at_the_last_bar(
    data: tuple[pd.DataFrame, list[int]],
) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] > 0:
            s.buy(size=5)
            s.buy(size=3, tag="second")

    peer, ours = run_both(decide, frame, finalize_trades=True)
    assert ours.position == 0 and len(ours.trades) >= 10
    assert_same_run(peer, ours)


def test_shorts_sized_as_a_fraction_with_brackets(data: tuple[pd.DataFrame, list[int]]) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] < 0:
            s.sell(size=0.25, sl=close * 1.04, tp=close * 0.93)
        elif cross[i] > 0:
            s.buy(size=0.1, sl=close * 0.97)

    check(decide, frame)


def test_hedging_keeps_opposite_trades_side_by_side(
    data: tuple[pd.DataFrame, list[int]],
) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] > 0:
            s.buy(size=0.2, tp=close * 1.05)
        elif cross[i] < 0:
            s.sell(size=0.2, sl=close * 1.05)
        for trade in s.trades:
            if i - trade.entry_bar >= 30:
                trade.close()

    peer, ours = run_both(decide, frame, hedging=True)
    assert any(t.is_long for t in ours.trades) and any(t.is_short for t in ours.trades)
    assert_same_run(peer, ours)


def test_spread_raises_entries_and_lowers_exits(data: tuple[pd.DataFrame, list[int]]) -> None:
    frame, cross = data

    def decide(s: Any, close: float, i: int) -> None:
        if cross[i] > 0:
            s.buy(sl=close * 0.95)
        elif cross[i] < 0:
            s.sell(tp=close * 0.95)

    check(decide, frame, spread=0.001, exclusive_orders=True)
