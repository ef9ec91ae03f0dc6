"""What a strategy sees (nothing past the current bar) and how its config is checked."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from quantflow_async.backtest import (
    SmaCross,
    Strategy,
    StrategyConfigError,
    run_backtest,
    sma,
    synthetic_bars,
)

BARS = synthetic_bars(60, seed=11)


class Observer(Strategy):
    """Records what `next` can see on each bar, and what reaching one bar further does."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def init(self) -> None:
        self.average = self.I(sma, self.data.close, 5)
        Observer.seen = []

    def next(self) -> None:
        i = self.bar_index
        record: dict[str, Any] = {
            "bar": i,
            "len": len(self.data.close),
            "last_close": self.data.close[-1],
            "visible": np.asarray(self.data.close).copy(),
            "average": self.average[-1],
            "tail": self.data.high[i + 1 :],
        }
        for name, reach in (
            ("close", lambda: self.data.close[i + 1]),
            ("indicator", lambda: self.average[i + 1]),
            ("volume", lambda: self.data.volume[len(self.data.volume)]),
        ):
            try:
                reach()
            except IndexError:
                record[f"{name}_raised"] = True
        self.seen.append(record)


def observe() -> list[dict[str, Any]]:
    run_backtest(Observer, BARS)
    return Observer.seen


def test_next_sees_the_bars_up_to_and_including_the_current_one() -> None:
    seen = observe()
    assert [s["bar"] for s in seen] == list(range(5, 60))  # after the 5-bar average's warm-up
    for record in seen:
        i = record["bar"]
        assert record["len"] == i + 1
        assert record["last_close"] == BARS.close[i]
        assert np.array_equal(record["visible"], BARS.close[: i + 1])


def test_reaching_past_the_current_bar_raises_index_error() -> None:
    for record in observe():
        assert record["close_raised"] and record["indicator_raised"] and record["volume_raised"]


def test_a_slice_reaching_forward_is_empty() -> None:
    assert all(len(record["tail"]) == 0 for record in observe())


def test_indicators_are_revealed_bar_by_bar() -> None:
    full = sma(BARS.close, 5)
    assert [s["average"] for s in observe()] == pytest.approx(full[5:].tolist())


def test_indicators_cannot_be_declared_in_next() -> None:
    class Late(Strategy):
        def next(self) -> None:
            self.I(sma, self.data.close, 3)

    with pytest.raises(RuntimeError, match="init"):
        run_backtest(Late, BARS)


def test_indicator_of_the_wrong_length_is_refused() -> None:
    class Short(Strategy):
        def init(self) -> None:
            self.I(lambda close: close[:-1], self.data.close)

    with pytest.raises(ValueError, match="shape"):
        run_backtest(Short, BARS)


def test_an_indicator_takes_backtesting_pys_name_and_drawing_hints() -> None:
    """They name the Series or are drawing hints: none of them reaches the function."""
    names: list[str] = []

    class Named(Strategy):
        def init(self) -> None:
            fast = self.I(
                sma, self.data.close, 3, name="fast", plot=False, overlay=True, color="red",
                scatter=False,
            )  # fmt: skip
            names.append(fast.name)

    run_backtest(Named, BARS)
    assert names == ["fast"]


@pytest.mark.parametrize("shape", ["row", "column"])
def test_an_indicator_of_one_row_or_one_column_is_one_value_per_bar(shape: str) -> None:
    seen: list[float] = []

    class OneRow(Strategy):
        def init(self) -> None:
            def flat(close: np.ndarray) -> np.ndarray:
                return close.reshape(1, -1) if shape == "row" else close.reshape(-1, 1)

            self.level = self.I(flat, self.data.close)

        def next(self) -> None:
            seen.append(self.level[-1])

    run_backtest(OneRow, BARS)
    assert seen == BARS.close[1:].tolist()


def test_an_indicator_of_several_rows_is_refused_saying_to_declare_each_row() -> None:
    class Bands(Strategy):
        def init(self) -> None:
            self.I(lambda close: np.vstack([close * 0.9, close * 1.1]), self.data.close)

    with pytest.raises(ValueError, match="returned 2 rows of values: declare each row"):
        run_backtest(Bands, BARS)


def test_data_a_strategy_sees_cannot_be_written() -> None:
    class Writer(Strategy):
        def next(self) -> None:
            self.data.close.values[-1] = 0.0

    with pytest.raises(ValueError, match="read-only"):
        run_backtest(Writer, BARS)


def test_parameters_default_and_come_from_the_config() -> None:
    assert SmaCross().config == {"fast": 10, "slow": 20}
    assert SmaCross({"fast": 3}).config == {"fast": 3, "slow": 20}


def test_unknown_config_key_is_named() -> None:
    with pytest.raises(StrategyConfigError, match="^window: not a parameter of SmaCross") as caught:
        SmaCross({"window": 3})
    assert caught.value.key == "window"


def test_config_value_of_the_wrong_type_is_named() -> None:
    with pytest.raises(StrategyConfigError, match="^fast: must be an integer, got '5'"):
        SmaCross({"fast": "5"})
    with pytest.raises(StrategyConfigError, match="^fast: must be an integer, got True"):
        SmaCross({"fast": True})


def test_config_value_out_of_range_is_named() -> None:
    with pytest.raises(StrategyConfigError, match=r"^slow: must be > fast \(10\), got 5"):
        SmaCross({"slow": 5})
    with pytest.raises(StrategyConfigError, match="^k: must be > 0"):
        run_backtest("bollinger", BARS, {"k": -1})


def test_float_parameter_accepts_an_integer_and_refuses_nan() -> None:
    assert run_backtest("bollinger", BARS, {"k": 3}).config == {"window": 20, "k": 3.0}
    with pytest.raises(StrategyConfigError, match="^k: must be a finite number"):
        run_backtest("bollinger", BARS, {"k": float("nan")})


def test_unknown_strategy_name_lists_the_known_ones() -> None:
    with pytest.raises(
        StrategyConfigError, match=r"unknown strategy 'macd' \(known: bollinger, sma_cross\)"
    ):
        run_backtest("macd", BARS)


def test_parameter_without_a_default_is_required() -> None:
    class NeedsWindow(Strategy):
        window: int

    with pytest.raises(StrategyConfigError, match="^window: required"):
        NeedsWindow()
    assert NeedsWindow({"window": 4}).config == {"window": 4}


def test_a_parameter_may_not_hide_a_strategy_attribute() -> None:
    with pytest.raises(TypeError, match="taken by Strategy"):

        class Clash(Strategy):  # noqa: F841 - defining it is the test
            position: int = 1


@pytest.mark.parametrize("size", [0, -1, 1.5, 2.25])
def test_order_size_is_a_fraction_or_whole_units(size: float) -> None:
    class Odd(Strategy):
        def next(self) -> None:
            self.buy(size=size)

    with pytest.raises(ValueError, match="size must be a fraction of equity"):
        run_backtest(Odd, BARS)


@pytest.mark.parametrize(("key", "value"), [("cash", 0), ("commission", -0.01), ("slippage", 1.0)])
def test_bad_run_setting_is_named(key: str, value: float) -> None:
    settings: dict[str, Any] = {key: value}
    with pytest.raises(StrategyConfigError, match=f"^{key}: must be in"):
        run_backtest("sma_cross", BARS, **settings)
