"""The Strategy base class: `init` builds indicators once, `next` decides on each bar.

What `next` sees is cut at the current bar by construction: every column and indicator is a
`Series` that reads a shared clock, so `close[-1]` is this bar's close and asking for a later
bar raises IndexError. Parameters are annotated class attributes, set from a config mapping.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar, Final, overload

import numpy as np

from quantflow_async.backtest.bars import Bars, FloatArray
from quantflow_async.backtest.broker import FULL_EQUITY, Broker
from quantflow_async.backtest.clock import Clock as Clock  # and from here
from quantflow_async.backtest.executions import ClosedTrade
from quantflow_async.backtest.orders import Order
from quantflow_async.backtest.trades import Position, Trade
from quantflow_async.errors import StrategyConfigError as StrategyConfigError  # and from here

PARAMETER_TYPES: Final = (int, float, bool, str)


class Series:
    """A column or an indicator, cut at the current bar.

    `s[-1]` is the current bar, `s[-2]` the one before; `s[i]` is bar i and raises IndexError
    when bar i is still in the future. Slices, `len`, iteration and `np.asarray(s)` see the
    visible bars only.
    """

    __slots__ = ("_clock", "_list", "_values", "name")

    def __init__(self, values: FloatArray, clock: Clock, name: str) -> None:
        values = np.asarray(values, dtype=np.float64).view()
        values.flags.writeable = False  # a strategy reads its data, it cannot change it
        self._values = values
        self._list: list[float] = values.tolist()  # indexing a list is several times faster
        self._clock = clock
        self.name = name

    @overload
    def __getitem__(self, key: int) -> float: ...
    @overload
    def __getitem__(self, key: slice) -> FloatArray: ...
    def __getitem__(self, key: int | slice) -> float | FloatArray:
        end = self._clock.end
        if key.__class__ is int:
            index: int = key
            if -end <= index < 0:
                return self._list[end + index]
            if 0 <= index < end:
                return self._list[index]
            raise IndexError(
                f"{self.name}[{index}] is not visible: bars 0..{end - 1} are "
                f"(bar {end - 1} is the current one)"
            )
        if isinstance(key, slice):
            return self._values[:end][key]
        if isinstance(key, np.integer):
            return self[int(key)]
        raise TypeError(f"{self.name} indices must be int or slice, not {type(key).__name__}")

    def __len__(self) -> int:
        return self._clock.end

    def __iter__(self) -> Iterator[float]:
        return iter(self._list[: self._clock.end])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> FloatArray:
        visible = self._values[: self._clock.end]
        return visible if dtype is None else visible.astype(dtype)

    @property
    def values(self) -> FloatArray:
        """The visible bars as a read-only array."""
        return self._values[: self._clock.end]

    def __repr__(self) -> str:
        return f"<Series {self.name}: {len(self)} bars visible>"


class Data:
    """The bars as a strategy sees them: open, high, low, close, volume as `Series`.

    A column becomes a Series the first time a strategy reads it, so a strategy that never
    looks at volume never pays for turning a million-bar column into a list.
    """

    __slots__ = ("_bars", "_clock", "close", "high", "low", "open", "volume")

    close: Series
    high: Series
    low: Series
    open: Series
    volume: Series

    def __init__(self, bars: Bars, clock: Clock) -> None:
        self._bars = bars
        self._clock = clock

    def __getattr__(self, name: str) -> Series:
        # Only reached while the slot is still empty: make the column, then it is a slot read.
        if name not in ("open", "high", "low", "close", "volume"):
            raise AttributeError(f"Data has no column {name!r}")
        column = Series(getattr(self._bars, name), self._clock, name)
        setattr(self, name, column)
        return column

    def __len__(self) -> int:
        return self._clock.end

    @property
    def now(self) -> datetime:
        """The current bar's time (UTC)."""
        return self._bars.time_at(self._clock.end - 1)


class Strategy:
    """Subclass it, declare parameters as annotated class attributes, write `init` and `next`.

        class SmaCross(Strategy):
            fast: int = 10
            slow: int = 20

            def init(self) -> None:
                self.fast_ma = self.I(sma, self.data.close, self.fast)
                self.slow_ma = self.I(sma, self.data.close, self.slow)

            def next(self) -> None:
                if crossover(self.fast_ma, self.slow_ma):
                    self.close()
                    self.buy()

    The constructor takes the config mapping and checks it: an unknown key, a missing one
    (a parameter without a default) or a value of the wrong type raises StrategyConfigError;
    override `validate` to check ranges. `next` first runs once every indicator has a value.
    """

    parameters: ClassVar[dict[str, type]] = {}
    data: Data
    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hints = typing.get_type_hints(cls)
        found: dict[str, type] = {}
        for klass in reversed(cls.__mro__):
            if not issubclass(klass, Strategy) or klass is Strategy:
                continue
            for name in klass.__dict__.get("__annotations__", {}):
                kind = hints.get(name)
                if name.startswith("_") or typing.get_origin(kind) is ClassVar:
                    continue
                if kind not in PARAMETER_TYPES:
                    raise TypeError(
                        f"{cls.__name__}.{name}: a parameter is int, float, bool or str"
                    )
                if hasattr(Strategy, name) or name in Strategy.__annotations__:
                    raise TypeError(f"{cls.__name__}.{name}: the name is taken by Strategy")
                found[name] = kind
        cls.parameters = found

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = dict(config or {})
        for key in config:
            if key not in self.parameters:
                known = ", ".join(sorted(self.parameters)) or "none"
                raise StrategyConfigError(
                    key, f"not a parameter of {type(self).__name__} (parameters: {known})"
                )
        resolved: dict[str, Any] = {}
        for name, kind in self.parameters.items():
            if name in config:
                value = _coerce(name, kind, config[name])
            elif hasattr(type(self), name):
                value = getattr(type(self), name)
            else:
                raise StrategyConfigError(name, f"required by {type(self).__name__}")
            setattr(self, name, value)
            resolved[name] = value
        self.config = resolved
        self.validate()
        self._broker: Broker | None = None
        self._clock = Clock(0)
        self._warmup = 0
        self._in_init = False

    # -- what a strategy writes -------------------------------------------------------------

    def validate(self) -> None:
        """Check the parameters together; raise StrategyConfigError naming the key."""

    def init(self) -> None:
        """Build indicators with `self.I`, over the whole series, once."""

    def next(self) -> None:
        """Decide on the current bar: `self.buy`, `self.sell`, `self.close`."""

    # -- what a strategy calls --------------------------------------------------------------

    def I(  # noqa: E743
        self,
        func: Callable[..., Any],
        *args: Any,
        name: str | None = None,
        plot: bool = True,
        overlay: bool | None = None,
        color: str | None = None,
        scatter: bool = False,
        **kwargs: Any,
    ) -> Series:
        """An indicator: `func(*args, **kwargs)` over the whole series, revealed bar by bar.

        Series arguments reach `func` as numpy arrays. The result must have one value per bar;
        leading NaNs are its warm-up, and `next` starts only after every indicator's warm-up.
        `name` names the Series (default: the function's name); `plot`, `overlay`, `color` and
        `scatter` are backtesting.py's drawing hints, taken so that its strategies run, and
        not passed to `func`. An indicator of several rows is declared one row at a time.
        """
        if not self._in_init:
            raise RuntimeError("indicators are declared in init(), not in next()")
        arrays = [np.asarray(a) if isinstance(a, Series) else a for a in args]
        values = np.asarray(func(*arrays, **kwargs), dtype=np.float64)
        name = name if name is not None else getattr(func, "__name__", "indicator")
        if values.ndim == 2 and 1 in values.shape:
            values = values.reshape(-1)  # one row or one column: one value per bar
        if values.ndim == 2 and self._clock.end in values.shape:
            raise ValueError(
                f"indicator {name} returned {min(values.shape)} rows of values: declare each "
                f"row as an indicator of its own, e.g. self.I(lambda *a: {name}(*a)[0], ...)"
            )
        if values.shape != (self._clock.end,):
            raise ValueError(
                f"indicator {name} returned shape {values.shape}, expected ({self._clock.end},)"
            )
        valid = np.flatnonzero(~np.isnan(values))
        first = int(valid[0]) if len(valid) else len(values)
        self._warmup = max(self._warmup, first)
        return Series(values, self._clock, name)

    def buy(
        self,
        *,
        size: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
        sl: float | None = None,
        tp: float | None = None,
        tag: object = None,
    ) -> Order:
        """Place a long order and return it (backtesting.py's `buy`).

        `size`: whole units (>= 1) or a fraction of the margin available (0 < size < 1);
        all of it when omitted. Without `limit` or `stop` it is a market order, filled at
        the next open; with `limit`, once the price trades at or below it; with `stop`, once
        the price trades at or above it (then at market, or at `limit` for a stop-limit).
        `sl` and `tp` become the stop-loss and take-profit orders of the trade it opens.
        `tag` follows the order to its trade. ValueError for a bad value, or unless
        sl < entry < tp."""
        return self._order(1, size, limit, stop, sl, tp, tag)

    def sell(
        self,
        *,
        size: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
        sl: float | None = None,
        tp: float | None = None,
        tag: object = None,
    ) -> Order:
        """Place a short order (or one reducing a long, FIFO): the mirror image of `buy`,
        with tp < entry < sl."""
        return self._order(-1, size, limit, stop, sl, tp, tag)

    def close(self) -> None:
        """Close every open trade at the next open: `self.position.close()`."""
        self._engine_broker().position.close()

    @property
    def position(self) -> Position:
        """The net position: size, pl, pl_pct (percent), is_long, is_short, close()."""
        broker = self._broker  # read on every bar by many strategies: kept short
        if broker is None:
            raise RuntimeError("the strategy is not attached to a backtest")
        return broker.position

    @property
    def trades(self) -> tuple[Trade, ...]:
        """The open trades, oldest first."""
        broker = self._broker  # read on every bar by many strategies: kept short
        if broker is None:
            raise RuntimeError("the strategy is not attached to a backtest")
        return tuple(broker.trades)

    @property
    def closed_trades(self) -> tuple[ClosedTrade, ...]:
        """The closed trades, in the order they closed."""
        return tuple(self._engine_broker().closed_trades)

    @property
    def orders(self) -> tuple[Order, ...]:
        """The orders waiting, in the order the broker examines them."""
        return tuple(self._engine_broker().orders)

    @property
    def equity(self) -> float:
        """Cash plus the open position marked at the current close."""
        return self._engine_broker().equity(self.data.close[-1])

    @property
    def bar_index(self) -> int:
        """The current bar's index, from 0."""
        return self._clock.end - 1

    # -- what the engine calls --------------------------------------------------------------

    def attach(self, bars: Bars, broker: Broker, clock: Clock) -> None:
        """Give the strategy its bars, broker and clock, and run `init` over the whole series.

        Called by the engine, which then moves `clock.end` forward before each `next`;
        `warmup` says how many bars the indicators need first.
        """
        self._broker = broker
        self._clock = clock
        broker.clock = clock
        clock.end = len(bars)
        self.data = Data(bars, self._clock)
        self._in_init = True
        try:
            self.init()
        finally:
            self._in_init = False

    @property
    def warmup(self) -> int:
        """The first bar on which every indicator has a value (0 without indicators)."""
        return self._warmup

    def _engine_broker(self) -> Broker:
        if self._broker is None:
            raise RuntimeError("the strategy is not attached to a backtest")
        return self._broker

    def _order(
        self,
        sign: int,
        size: float | None,
        limit: float | None,
        stop: float | None,
        sl: float | None,
        tp: float | None,
        tag: object,
    ) -> Order:
        if size is None:
            magnitude = FULL_EQUITY
        elif 0 < size < 1 or (size >= 1 and float(size).is_integer()):
            magnitude = float(size)
        else:
            raise ValueError(
                f"size must be a fraction of equity (0 < size < 1) or whole units >= 1, "
                f"got {size!r}"
            )
        if limit is not None or stop is not None or sl is not None or tp is not None:
            for name, price in (("limit", limit), ("stop", stop), ("sl", sl), ("tp", tp)):
                if price is not None and not (math.isfinite(price) and price > 0):
                    raise ValueError(f"{name} must be a finite price > 0, got {price!r}")
        return self._engine_broker().new_order(sign * magnitude, limit, stop, sl, tp, tag)


def _coerce(key: str, kind: type, value: Any) -> Any:
    """`value` as a `kind` parameter, or StrategyConfigError naming `key`."""
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise StrategyConfigError(key, f"must be a finite number, got {value!r}")
        return float(value)
    if kind is int and isinstance(value, bool):
        raise StrategyConfigError(key, f"must be an integer, got {value!r}")
    if isinstance(value, kind):
        return value
    article = "an" if kind is int else "a"
    noun = {int: "integer", float: "number", bool: "boolean", str: "string"}[kind]
    raise StrategyConfigError(key, f"must be {article} {noun}, got {value!r}")
