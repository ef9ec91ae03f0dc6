"""What a journal entry's producer holds while its batch commits, and what a batch claims."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import anyio

from quantflow_async.store.journal_batch import DriverRow


class Ticket:
    """The fate of one queued entry: `await ticket.wait()` returns once it is committed.

    The event is made only for a caller that waits: most entries are never waited for, and
    making one per entry cost about a tenth of `put` (measured by benchmarks/journal.py).
    `refused` is set when the batch stored the entry's event as refused (a claim another
    order holds): the batch committed, and only the entry's own caller hears of it.
    """

    __slots__ = ("done", "error", "refused", "_event")

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None
        self.refused: BaseException | None = None
        self._event: anyio.Event | None = None

    def finish(
        self, error: BaseException | None = None, *, refused: BaseException | None = None
    ) -> None:
        self.error = error
        self.refused = refused
        self.done = True
        if self._event is not None:
            self._event.set()

    async def wait(self, *, raise_refusal: bool = True) -> None:
        if not self.done:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        if self.error is not None:
            raise self.error
        if self.refused is not None and raise_refusal:
            raise self.refused


ClashHandler = Callable[[int, str, str], tuple[DriverRow, BaseException]]
"""Called with (order id, venue order id, the holder's client order id) when a batch finds
the venue order id an entry claims held by another order: the refused event to store in the
entry's place, and the error its waiting caller gets."""


@dataclass(slots=True)
class Claim:
    event_index: int
    order_id: int
    venue_order_id: str
    ticket: Ticket
