"""What a TradeWriter has taken from its queue and not settled yet: the batch being written and
the batch sent behind it (ahead.py). Each fill is settled once, committed or refused; whatever
is not when the writer fails is handed back."""

from __future__ import annotations

from collections.abc import Sequence

from quantflow_async.errors import FillRejected
from quantflow_async.records import Fill


class InFlight:
    """The batch being written, its fills numbered from `first`, and `ahead`: the batch sent
    behind it with its token, written next."""

    def __init__(self) -> None:
        self.first = 1
        self.rejected: dict[int, FillRejected] = {}
        self.ahead: tuple[list[Fill], str] | None = None
        self._fills: list[Fill | None] = []

    def __len__(self) -> int:
        return len(self._fills)

    def begin(self, batch: list[Fill], first: int) -> None:
        self.first = first
        self.rejected = {}
        self._fills = list(batch)

    def committed(self, indexes: Sequence[int]) -> None:
        for index in indexes:
            self._fills[index] = None

    def refused(self, index: int, rejection: FillRejected) -> None:
        self.rejected[self.first + index] = rejection
        self._fills[index] = None

    def end(self) -> None:
        self._fills = []

    def give_up(self) -> tuple[range, set[int], list[Fill]]:
        """The writer failed: the batch's sequence numbers, those not settled, and every fill
        not known to be committed (the batch's, then the batch's sent behind it), in order."""
        first, fills = self.first, self._fills
        numbers = range(first, first + len(fills))
        uncommitted = {first + index for index, fill in enumerate(fills) if fill is not None}
        unsettled = [fill for fill in fills if fill is not None]
        if self.ahead is not None:
            unsettled.extend(self.ahead[0])
        self._fills, self.ahead = [], None
        return numbers, uncommitted, unsettled
