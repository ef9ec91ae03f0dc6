"""The venue's bars as a live strategy sees them: every closed bar, and the open of the next.

A venue's klines end with the bar that is still forming; the ones before it are closed. The
feed polls the venue and reports each new forming bar, which is when the bar before it has
closed and a decision on it can be filled at the new bar's open, as in a backtest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quantflow_async.backtest.bars import Bars
from quantflow_async.live.venue import Bar, Venue
from quantflow_async.validation import epoch_micros

log = logging.getLogger(__name__)

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class BarsSoFar:
    """The closed bars and the forming one, as engine bars: the last bar has only its open.

    `bars[-1]` is the forming bar with high, low and close set to its open; a strategy's
    clock stops at the bar before it.
    """

    bars: Bars
    closed: int


class BarFeed:
    """Polls `venue` for `symbol`'s bars; `poll()` returns new bars when a bar has closed.

    The first poll takes the most recent `history` bars (the venue's own limit per request is
    1,000 on Binance); later polls ask only for bars from the last one seen.
    """

    def __init__(self, venue: Venue, symbol: str, timeframe: str, history: int = _PAGE) -> None:
        self._venue = venue
        self._symbol = symbol
        self._timeframe = timeframe
        self._history = history
        self._bars: list[Bar] = []

    async def poll(self) -> BarsSoFar | None:
        """The bars so far if a new bar started since the last call (or on the first), else None."""
        before = len(self._bars)
        if not self._bars:
            recent = await self._venue.fetch_ohlcv(
                self._symbol, self._timeframe, limit=self._history
            )
            self._merge(recent)
            return self._so_far() if len(self._bars) >= 2 else None
        since = self._bars[-1].opened_at
        while True:
            page = await self._venue.fetch_ohlcv(
                self._symbol, self._timeframe, since=since, limit=_PAGE
            )
            added = self._merge(page)
            if len(page) < _PAGE or not added:
                break
            since = self._bars[-1].opened_at
        if len(self._bars) == before or len(self._bars) < 2:
            return None
        return self._so_far()

    def _so_far(self) -> BarsSoFar:
        return BarsSoFar(_engine_bars(self._bars, self._symbol), closed=len(self._bars) - 1)

    def _merge(self, page: Sequence[Bar]) -> int:
        """Add `page`'s bars, replacing the forming bar we had; return how many are new."""
        added = 0
        for bar in page:
            if self._bars and bar.opened_at < self._bars[-1].opened_at:
                continue
            if self._bars and bar.opened_at == self._bars[-1].opened_at:
                self._bars[-1] = bar
                continue
            self._bars.append(bar)
            added += 1
        return added


def _engine_bars(bars: Sequence[Bar], symbol: str) -> Bars:
    closed, forming = bars[:-1], bars[-1]
    opening = float(forming.open)
    return Bars.from_arrays(
        np.array([epoch_micros(bar.opened_at) for bar in bars], dtype=np.int64),
        [float(bar.open) for bar in closed] + [opening],
        [float(bar.high) for bar in closed] + [opening],
        [float(bar.low) for bar in closed] + [opening],
        [float(bar.close) for bar in closed] + [opening],
        [float(bar.volume) for bar in closed] + [0.0],
        source=f"<venue bars of {symbol}>",
    )
