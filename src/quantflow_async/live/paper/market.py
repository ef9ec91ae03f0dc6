"""The replayed market: a bars file's prices as exact Decimals, and the clock that says which
bar is forming at a wall-clock instant.

Bar k forms during wall time [t0 + k*S, t0 + (k+1)*S); after the last bar the market is closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from quantflow_async.backtest.bars import Bars

Clock = Callable[[], int]
"""Wall-clock nanoseconds since the epoch (`time.time_ns` in the server)."""


@dataclass(frozen=True, slots=True)
class Bar:
    """Bar `index` of the file: prices as `Decimal(repr(float))`, so that a client turning them
    back into floats gets exactly the backtest's floats. `time_ms` is the bar's open time;
    `volume` is None where the file has no volume."""

    index: int
    time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal | None


@dataclass(frozen=True, slots=True)
class Market:
    """Every bar of the file, the data's tick size, and the replay's pace."""

    bars: tuple[Bar, ...]
    tick_size: Decimal
    spacing_ms: int
    """The data's own bar spacing (the last gap between bars; 60 s for a single bar)."""

    @classmethod
    def of(cls, bars: Bars) -> Market:
        rows = []
        places = 0
        for k in range(len(bars)):
            prices = [
                Decimal(repr(float(column[k])))
                for column in (bars.open, bars.high, bars.low, bars.close)
            ]
            for price in prices:
                exponent = price.as_tuple().exponent
                if isinstance(exponent, int) and exponent < 0:
                    places = max(places, -exponent)
            volume = float(bars.volume[k])
            rows.append(
                Bar(
                    index=k,
                    time_ms=int(bars.times[k]) // 1000,
                    open=prices[0],
                    high=prices[1],
                    low=prices[2],
                    close=prices[3],
                    volume=Decimal(repr(volume)) if volume == volume else None,
                )
            )
        spacing = rows[-1].time_ms - rows[-2].time_ms if len(rows) > 1 else 60_000
        return cls(tuple(rows), Decimal(1).scaleb(-places), spacing)

    def __len__(self) -> int:
        return len(self.bars)

    def close_time_ms(self, index: int) -> int:
        """Binance's kline close time: the next bar's open time minus 1 ms."""
        following = self.bars[index + 1].time_ms if index + 1 < len(self.bars) else None
        return (
            following if following is not None else self.bars[index].time_ms + self.spacing_ms
        ) - 1


@dataclass(frozen=True, slots=True)
class Replay:
    """Which bar forms when: bar k during [t0 + k*S, t0 + (k+1)*S), in integer nanoseconds."""

    t0_ns: int
    bar_ns: int
    count: int

    def forming(self, now_ns: int) -> int:
        """The index of the bar forming at `now_ns`; `count` or more once the data is over."""
        return max(0, (now_ns - self.t0_ns) // self.bar_ns)

    def closed(self, now_ns: int) -> int:
        """How many bars have closed by `now_ns` (never more than the data holds)."""
        return min(self.count, self.forming(now_ns))

    def next_boundary_ns(self, now_ns: int) -> int | None:
        """When the next bar closes, or None when every bar has closed."""
        index = self.forming(now_ns)
        if index >= self.count:
            return None
        return self.t0_ns + (index + 1) * self.bar_ns
