"""The strategies that ship with the engine, their indicators, and the registry of names.

`sma_cross` is backtesting.py's SmaCross example; `bollinger` is a mean-reversion rule on
Bollinger bands. `STRATEGIES` maps the names the CLI and the sweep accept to the classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from quantflow_async.backtest.bars import FloatArray
from quantflow_async.backtest.strategy import Series, Strategy, StrategyConfigError
from quantflow_async.backtest.strategy_reference import load_strategy, reference_of


def sma(values: FloatArray, n: int) -> FloatArray:
    """Simple moving average of `n` bars; NaN for the first n - 1 bars."""
    out = np.full(len(values), np.nan)
    if n <= len(values):
        out[n - 1 :] = sliding_window_view(values, n).mean(axis=1)
    return out


def rolling_std(values: FloatArray, n: int) -> FloatArray:
    """Population standard deviation (ddof=0) of `n` bars, as Bollinger defined the bands."""
    out = np.full(len(values), np.nan)
    if n <= len(values):
        out[n - 1 :] = sliding_window_view(values, n).std(axis=1)
    return out


def crossover(a: Series, b: Series) -> bool:
    """True on the bar where `a` crosses above `b`: below on the previous bar, above now.

    Both comparisons are strict and any comparison with NaN is false (backtesting.py's rule).
    `next` always sees at least two bars, so the previous one exists.
    """
    return a[-2] < b[-2] and a[-1] > b[-1]


def crossings(a: FloatArray, b: FloatArray) -> FloatArray:
    """`crossover` for every bar at once: +1 where `a` crosses above `b`, -1 below, else 0.

    Bar i compares bars i - 1 and i only, so the array is as causal as the per-bar test.
    """
    out = np.zeros(len(a))
    up = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
    down = (a[:-1] > b[:-1]) & (a[1:] < b[1:])
    out[1:][up] = 1.0
    out[1:][down] = -1.0
    return out


class SmaCross(Strategy):
    """On a fast/slow moving-average crossover, close the position and go long (up) or short.

    The crossings are found once, in `init`, with numpy: the same rule as calling
    `crossover` on every bar, at a fraction of the per-bar cost.
    """

    fast: int = 10
    slow: int = 20

    def validate(self) -> None:
        if self.fast < 1:
            raise StrategyConfigError("fast", f"must be >= 1, got {self.fast}")
        if self.slow <= self.fast:
            raise StrategyConfigError("slow", f"must be > fast ({self.fast}), got {self.slow}")

    def init(self) -> None:
        self.fast_ma = self.I(sma, self.data.close, self.fast)
        self.slow_ma = self.I(sma, self.data.close, self.slow)
        self.cross = self.I(crossings, self.fast_ma, self.slow_ma)

    def next(self) -> None:
        cross = self.cross[-1]
        if cross > 0:
            self.close()
            self.buy()
        elif cross < 0:
            self.close()
            self.sell()


def lower_band(values: FloatArray, window: int, k: float) -> FloatArray:
    """The lower Bollinger band: the `window` average less k population deviations."""
    return sma(values, window) - k * rolling_std(values, window)


def upper_band(values: FloatArray, window: int, k: float) -> FloatArray:
    """The upper Bollinger band: the `window` average plus k population deviations."""
    return sma(values, window) + k * rolling_std(values, window)


class Bollinger(Strategy):
    """Mean reversion on Bollinger bands.

    A close below the lower band goes long, a close above the upper band goes short (each
    unless already so); a long is closed once the close is back at or above the middle band,
    a short once it is back at or below it.
    """

    window: int = 20
    k: float = 2.0

    def validate(self) -> None:
        if self.window < 2:
            raise StrategyConfigError("window", f"must be >= 2, got {self.window}")
        if self.k <= 0:
            raise StrategyConfigError("k", f"must be > 0, got {self.k}")

    def init(self) -> None:
        self.lower = self.I(lower_band, self.data.close, self.window, self.k)
        self.middle = self.I(sma, self.data.close, self.window)
        self.upper = self.I(upper_band, self.data.close, self.window, self.k)

    def next(self) -> None:
        close = self.data.close[-1]
        position = self.position
        if close < self.lower[-1] and not position.is_long:
            self.close()
            self.buy()
        elif close > self.upper[-1] and not position.is_short:
            self.close()
            self.sell()
        elif position.is_long and close >= self.middle[-1]:
            self.close()
        elif position.is_short and close <= self.middle[-1]:
            self.close()


STRATEGIES: Final[Mapping[str, type[Strategy]]] = {
    "bollinger": Bollinger,
    "sma_cross": SmaCross,
}


def strategy_class(reference: str) -> type[Strategy]:
    """The strategy `reference` names: a name of `STRATEGIES`, `path/to/file.py:ClassName`,
    `package.module:ClassName` or an installed strategy's name (backtest/strategy_reference.py);
    StrategyConfigError says what is wrong in one line."""
    return load_strategy(reference, dict(STRATEGIES))


def strategy_reference(cls: type[Strategy]) -> str:
    """The reference that finds `cls` again in any process (its name, if built in)."""
    return reference_of(cls, dict(STRATEGIES))
