"""Small bars and scripted strategies for the engine's tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from quantflow_async.backtest import Bars, Strategy

MONDAY = datetime(2024, 1, 1, tzinfo=UTC)


def make_bars(ohlc: Sequence[tuple[float, float, float, float]], *, weekdays: bool = True) -> Bars:
    """Bars from (open, high, low, close) rows, one a day from Monday 2024-01-01.

    With `weekdays`, Saturdays and Sundays are skipped, as on a stock exchange.
    """
    times: list[datetime] = []
    day = MONDAY
    while len(times) < len(ohlc):
        if not weekdays or day.weekday() < 5:
            times.append(day)
        day += timedelta(days=1)
    columns = list(zip(*ohlc, strict=True))
    return Bars.from_arrays(times, *columns)


def flat_bars(count: int, price: float = 100.0) -> Bars:
    return make_bars([(price, price, price, price)] * count)


def scripted(plan: dict[int, list[tuple[str, dict[str, Any]]]]) -> type[Strategy]:
    """A strategy that, on bar i's `next`, calls the methods `plan[i]` lists, in order."""

    class Scripted(Strategy):
        steps: ClassVar[dict[int, list[tuple[str, dict[str, Any]]]]] = plan

        def next(self) -> None:
            for method, kwargs in self.steps.get(self.bar_index, []):
                getattr(self, method)(**kwargs)

    return Scripted
