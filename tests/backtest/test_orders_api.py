"""The order and trade API a strategy uses (backtesting.py's names), each on a few hand-made
bars: orders waiting and cancelled, stops, brackets moved and removed, partial closes, the
position's and the trades' pl, trade_on_close and finalize_trades."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from quantflow_async.backtest import Order, Strategy, run_backtest

from .support import make_bars, scripted

# open, high, low, close
RISING = [
    (100, 101, 99, 100),
    (100, 102, 99, 101),
    (102, 106, 101, 105),
    (105, 109, 104, 108),
    (108, 112, 107, 111),
    (111, 113, 110, 112),
]


class Recorder(Strategy):
    """Runs `act(self, bar)` on every bar and keeps what it returns."""

    act: ClassVar[Any] = None
    seen: ClassVar[list[Any]] = []

    def next(self) -> None:
        self.seen.append(type(self).act(self, self.bar_index))


def recording(act: Any) -> type[Recorder]:
    return type("Recording", (Recorder,), {"act": staticmethod(act), "seen": []})


def test_buy_returns_the_order_waiting_and_cancel_withdraws_it() -> None:
    def act(s: Strategy, bar: int) -> Any:
        if bar == 1:
            order = s.buy(size=1, limit=50)
            assert isinstance(order, Order) and s.orders == (order,)
            order.cancel()
        return s.orders

    strategy = recording(act)
    result = run_backtest(strategy, make_bars(RISING))
    assert result.executions == () and strategy.seen[0] == ()


def test_stop_buy_fills_at_the_stop_once_the_high_reaches_it() -> None:
    result = run_backtest(scripted({1: [("buy", {"size": 1, "stop": 107})]}), make_bars(RISING))
    (fill,) = result.executions
    assert (fill.bar, fill.price) == (3, 107.0)  # bar 2's high is 106, bar 3's 109


def test_stop_buy_gapped_through_fills_at_the_open() -> None:
    result = run_backtest(scripted({1: [("buy", {"size": 1, "stop": 101.5})]}), make_bars(RISING))
    (fill,) = result.executions
    assert (fill.bar, fill.price) == (2, 102.0)  # bar 2 opens above the stop


def test_a_bracket_out_of_order_is_refused_when_placed() -> None:
    strategy = scripted({1: [("buy", {"size": 1, "sl": 105, "tp": 110})]})
    with pytest.raises(ValueError, match=r"sl \(105.0\) < entry \(101.0\) < tp \(110.0\)"):
        run_backtest(strategy, make_bars(RISING))


def test_the_stop_loss_closes_the_trade_and_cancels_its_take_profit() -> None:
    bars = make_bars([*RISING[:3], (105, 106, 95, 96), (96, 97, 95, 96)])
    result = run_backtest(scripted({1: [("buy", {"size": 2, "sl": 99, "tp": 120})]}), bars)
    (trade,) = result.trades
    assert (trade.entry_bar, trade.exit_bar, trade.exit_price) == (2, 3, 99.0)
    assert result.position == 0


def test_assigning_sl_moves_the_stop_and_none_removes_it() -> None:
    def act(s: Strategy, bar: int) -> Any:
        if bar == 1:
            s.buy(size=1, sl=90)
        elif bar == 3:
            (trade,) = s.trades
            trade.sl = 104  # bar 4 trades down to 107: not hit
            trade.tp = 200
        elif bar == 4:
            (trade,) = s.trades
            trade.sl = None
        return [(t.sl, t.tp) for t in s.trades], len(s.orders)

    strategy = recording(act)
    run_backtest(strategy, make_bars(RISING))
    assert strategy.seen[1:4] == [([(90.0, None)], 1), ([(104.0, 200.0)], 2), ([(None, 200.0)], 1)]


@pytest.mark.parametrize("kind", ["sl", "tp"])
def test_moving_sl_or_tp_places_a_new_order_and_the_old_one_stays_cancelled(kind: str) -> None:
    """As backtesting.py does: a strategy holding the old order cannot cancel the new one."""
    prices = {"sl": (90, 95), "tp": (200, 210)}[kind]

    def act(s: Strategy, bar: int) -> Any:
        if bar == 1:
            s.buy(size=1, **{kind: prices[0]})
        elif bar == 3:
            (old,) = s.orders
            (trade,) = s.trades
            setattr(trade, kind, prices[1])
            (new,) = s.orders
            assert new is not old and new.is_contingent and not old.is_contingent
            with pytest.raises(ValueError):
                old.cancel()  # no longer waiting
            return getattr(trade, kind), getattr(old, "stop" if kind == "sl" else "limit")
        return None

    strategy = recording(act)
    run_backtest(strategy, make_bars(RISING))
    assert strategy.seen[2] == (float(prices[1]), float(prices[0]))


def test_trade_close_of_a_portion_leaves_the_rest_open() -> None:
    def act(s: Strategy, bar: int) -> Any:
        if bar == 1:
            s.buy(size=5)
        elif bar == 2:
            s.trades[0].close(0.5)  # round(2.5) is 2: half-even, as the peer's
        return [t.size for t in s.trades], [t.size for t in s.closed_trades]

    strategy = recording(act)
    run_backtest(strategy, make_bars(RISING))
    assert strategy.seen[2] == ([3], [2])


def test_a_portion_outside_zero_to_one_is_refused() -> None:
    def act(s: Strategy, bar: int) -> Any:
        if bar == 1:
            s.buy(size=5)
        elif bar == 2:
            s.trades[0].close(1.5)

    with pytest.raises(ValueError, match=r"portion must be in \(0, 1\], got 1.5"):
        run_backtest(recording(act), make_bars(RISING))


def test_trade_pl_pct_is_a_fraction_and_position_pl_pct_a_percent() -> None:
    def act(s: Strategy, bar: int) -> Any:
        if bar == 1:
            s.buy(size=10)
        trade = s.trades[0] if s.trades else None
        return trade and (trade.pl, trade.pl_pct, s.position.pl, s.position.pl_pct, trade.value)

    strategy = recording(act)
    run_backtest(strategy, make_bars(RISING))
    pl, pl_pct, position_pl, position_pct, value = strategy.seen[1]  # bar 2: close 105, entry 102
    assert (pl, position_pl, value) == (30.0, 30.0, 1050.0)
    assert pl_pct == pytest.approx(3 / 102)
    assert position_pct == pytest.approx(3 / 102 * 100)


def test_an_open_trade_has_no_exit_and_a_closed_one_keeps_its_brackets() -> None:
    """backtesting.py's names, so that a strategy written for it runs as it is."""

    def act(s: Strategy, bar: int) -> Any:
        if bar == 1:
            s.buy(size=1, sl=90, tp=107)
        if s.trades:
            (trade,) = s.trades
            return trade.exit_price, trade.exit_bar, trade.exit_time
        return None

    strategy = recording(act)
    result = run_backtest(strategy, make_bars(RISING))
    assert strategy.seen[1] == (None, None, None)  # bar 2, the trade open
    (closed,) = result.trades  # the take-profit: bar 3 reaches 109
    assert (closed.exit_price, closed.sl, closed.tp) == (107.0, 90.0, 107.0)


# open, high, low, close: bar 3 trades down through 103, bar 4 gaps down past 100
FALLING = [
    (110, 111, 109, 110),
    (110, 111, 109, 110),
    (110, 111, 108, 109),
    (108, 109, 102, 104),
    (96, 97, 95, 96),
    (96, 97, 95, 96),
]


@pytest.mark.parametrize(
    ("stop", "expected"), [(103, 103.0), (100, None)], ids=["filled-at-its-stop", "gapped-past"]
)
def test_a_trade_its_stop_closed_keeps_the_stop_only_if_it_filled_at_it(
    stop: float, expected: float | None
) -> None:
    """backtesting.py's SL column: the stop, unless the price gapped past it."""
    result = run_backtest(
        scripted({1: [("buy", {"size": 1, "sl": stop, "tp": 200})]}), make_bars(FALLING)
    )
    (closed,) = result.trades
    assert (closed.sl, closed.tp) == (expected, 200.0)


def test_a_part_of_a_trade_closed_keeps_no_brackets() -> None:
    def act(s: Strategy, bar: int) -> Any:
        if bar == 1:
            s.buy(size=4, sl=50, tp=200)
        elif bar == 2:
            s.trades[0].close(0.5)
        return None

    result = run_backtest(recording(act), make_bars(RISING), finalize_trades=True)
    part, rest = result.trades
    assert (part.size, part.sl, part.tp) == (2, None, None)
    assert (rest.size, rest.sl, rest.tp) == (2, 50.0, 200.0)


def test_trade_on_close_fills_at_the_close_of_the_signal_bar() -> None:
    result = run_backtest(
        scripted({1: [("buy", {"size": 1})]}), make_bars(RISING), trade_on_close=True
    )
    (fill,) = result.executions
    assert (fill.bar, fill.price) == (1, 101.0)


def test_finalize_trades_closes_the_open_trade_at_the_last_bar() -> None:
    result = run_backtest(
        scripted({1: [("buy", {"size": 1})]}), make_bars(RISING), finalize_trades=True
    )
    (trade,) = result.trades
    assert (trade.exit_bar, trade.exit_price, result.position) == (5, 111.0, 0)  # its open


def test_margin_lets_a_fraction_buy_more_than_the_cash() -> None:
    result = run_backtest(
        scripted({1: [("buy", {"size": 0.99})]}), make_bars(RISING), cash=1_000, margin=0.5
    )
    assert result.executions[0].quantity == 19  # int(1000 * 2 * 0.99 // 102)


def test_hedging_opens_an_opposite_trade_beside_the_open_one() -> None:
    plan = {1: [("buy", {"size": 2})], 2: [("sell", {"size": 1})]}
    result = run_backtest(scripted(plan), make_bars(RISING), exclusive_orders=False, hedging=True)
    assert result.trades == () and result.position == 1
    assert [e.side for e in result.executions] == ["buy", "sell"]
