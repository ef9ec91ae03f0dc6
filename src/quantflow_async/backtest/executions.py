"""What a run leaves behind: each simulated fill as an `Execution`, each closed trade as a
`ClosedTrade`. Plain immutable records, made by the broker and read by metrics and storage."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal, NamedTuple


# NamedTuples, not frozen dataclasses: as immutable, and made in about half the time, which a
# run with many thousands of fills notices.
class Execution(NamedTuple):
    """One simulated fill. `pnl` is the pnl it realized (before commissions), or None.

    `quantity` is in whole units; `commission` is what this execution paid. `sequence` counts
    executions from 1 within one backtest, so `external_id(backtest_id)` is deterministic.
    """

    sequence: int
    bar: int
    time: datetime
    symbol: str
    side: Literal["buy", "sell"]
    quantity: int
    price: float
    commission: float
    pnl: float | None

    def external_id(self, backtest_id: int) -> str:
        """The fill id to store: the same backtest run twice gives the same ids."""
        return f"backtest-{backtest_id}-{self.sequence}"


class ClosedTrade(NamedTuple):
    """A trade from entry to exit. `size` < 0 for a short; `pnl` is net of both commissions.

    Read by a strategy as `self.closed_trades`, with the peer's names beside ours: `pl` is
    `pnl`, `pl_pct` the return on the entry value net of commissions, as a fraction. `sl` and
    `tp` are the trade's stop-loss and take-profit prices when it closed whole, as the peer's
    SL and TP: a stop-loss that closed it is kept if it filled at its price, not if the price
    gapped past it; a part closed has neither.
    """

    symbol: str
    size: int
    entry_bar: int
    exit_bar: int
    entry_time: datetime
    exit_time: datetime
    entry_price: float
    exit_price: float
    commission: float
    pnl: float
    tag: object = None
    sl: float | None = None
    tp: float | None = None

    @property
    def pl(self) -> float:
        return self.pnl

    @property
    def pl_pct(self) -> float:
        gross = math.copysign(1, self.size) * (self.exit_price / self.entry_price - 1)
        return gross - self.commission / (abs(self.size) * self.entry_price)

    @property
    def value(self) -> float:
        """|size| x exit price."""
        return abs(self.size) * self.exit_price

    @property
    def is_long(self) -> bool:
        return self.size > 0

    @property
    def is_short(self) -> bool:
        return self.size < 0
