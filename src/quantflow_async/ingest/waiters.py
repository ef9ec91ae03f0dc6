"""Those awaiting the fate of fills: `submit(wait=True)` awaits one fill, `flush()` every fill
up to a sequence number. Batches are settled in order, so waiters are released in order."""

from __future__ import annotations

from collections import deque

import anyio

from quantflow_async.errors import FillRejected, WriterFailed
from quantflow_async.ingest.stats import Ledger


class _Waiter:
    """Someone awaiting the fate of every fill up to sequence number `seq` (or of that one)."""

    __slots__ = ("done", "error", "seq", "single", "since")

    def __init__(self, seq: int, single: bool, since: float) -> None:
        self.seq = seq
        self.single = single
        self.since = since
        self.done = anyio.Event()
        self.error: BaseException | None = None


class Waiters:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._waiting: deque[_Waiter] = deque()

    async def wait(self, seq: int, *, single: bool) -> None:
        """Return once fill `seq` (single) or every fill up to it is settled; raise its
        FillRejected (single), or WriterFailed if the writer failed first."""
        waiter = _Waiter(seq, single, anyio.current_time())
        self._waiting.append(waiter)
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    def settle(self, settled: int, rejected: dict[int, FillRejected]) -> None:
        """Every fill up to `settled` has its fate; `rejected` holds the refused ones."""
        now = anyio.current_time()
        waiting = self._waiting
        while waiting and waiting[0].seq <= settled:
            waiter = waiting.popleft()
            if waiter.single:
                waiter.error = rejected.get(waiter.seq)
                self._ledger.waited(now - waiter.since)
            waiter.done.set()

    def fail(
        self,
        failure: WriterFailed,
        batch: range,
        uncommitted: set[int],
        rejected: dict[int, FillRejected],
    ) -> None:
        """The writer failed with the fills `batch` in flight, `uncommitted` of them not
        settled: release everyone."""
        for waiter in self._waiting:
            # A fill of the broken batch settled before the failure keeps its own fate.
            settled = waiter.single and waiter.seq in batch and waiter.seq not in uncommitted
            waiter.error = rejected.get(waiter.seq) if settled else failure
            waiter.done.set()
        self._waiting.clear()
