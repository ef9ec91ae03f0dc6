"""A TradeWriter's queue: fills waiting for their batch, bounded by `max_queue`, and the clock
that says when a batch is due (a full batch queued, or the oldest fill `max_latency` old).

A batch taken to be sent behind the one in flight (ahead.py) still counts against `max_queue`
until it is written in its turn: producers feel the same back-pressure as when it waited here.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import anyio

from quantflow_async.config import WriterOptions
from quantflow_async.records import Fill

_NEVER = math.inf


class FillQueue:
    """Producers put fills and wait while it is full; the writer's task sleeps until a batch is
    due and takes it."""

    def __init__(self, options: WriterOptions) -> None:
        self.pending: deque[Fill] = deque()
        self._ahead = 0  # fills taken ahead, not yet being written
        self._batch_size = options.batch_size
        self._max_queue = options.max_queue
        # A queue smaller than a batch is full before the batch is: a batch is due then.
        self._full_batch = min(options.batch_size, options.max_queue)
        self._max_latency = options.max_latency
        self._first_arrival: float | None = None
        self._wake_at: float = _NEVER
        self._wakeup = anyio.Event()
        self._space = anyio.Event()

    def __len__(self) -> int:
        return len(self.pending) + self._ahead

    @property
    def room(self) -> int:
        return self._max_queue - len(self)

    def put(self, fill: Fill) -> None:
        pending = self.pending
        if not pending:
            self._first_arrival = anyio.current_time()
        pending.append(fill)
        if len(pending) >= self._wake_at:
            self._wakeup.set()

    def put_many(self, fills: list[Fill]) -> None:
        pending = self.pending
        if not pending:
            self._first_arrival = anyio.current_time()
        pending.extend(fills)
        if len(pending) >= self._wake_at:
            self._wakeup.set()

    async def wait_for_room(self) -> None:
        """Return once a batch was taken or the writer stopped (the queue may be full again)."""
        if self._space.is_set():
            self._space = anyio.Event()
        await self._space.wait()

    def release_producers(self) -> None:
        self._space.set()

    def wake(self) -> None:
        """Make the writer's task look at the queue now (a flush, the close)."""
        self._wakeup.set()

    def due(self, *, closing: bool, flush_wanted: bool) -> bool:
        """Whether a batch is due now, so that next_batch() would take it without sleeping."""
        queued = len(self.pending)
        if not queued:
            return False
        if closing or flush_wanted or queued >= self._full_batch:
            return True
        arrival = self._first_arrival
        return arrival is not None and arrival + self._max_latency <= anyio.current_time()

    async def next_batch(
        self, closing: Callable[[], bool], flush_wanted: Callable[[], bool]
    ) -> list[Fill]:
        """Sleep until a full batch is queued, the oldest fill is due, a flush wants it or the
        writer closes; then take the batch (empty once closed and drained)."""
        while not closing():
            queued = len(self.pending)
            if queued >= self._full_batch:
                break
            if queued and self._first_arrival is not None:
                remaining = self._first_arrival + self._max_latency - anyio.current_time()
                if remaining <= 0 or flush_wanted():
                    break
                self._wake_at = self._full_batch
                with anyio.move_on_after(remaining):
                    await self._sleep()
                continue
            self._wake_at = 1
            await self._sleep()
        return self.take_batch()

    async def _sleep(self) -> None:
        try:
            await self._wakeup.wait()
        finally:
            self._wakeup = anyio.Event()
            self._wake_at = _NEVER

    def take_batch(self) -> list[Fill]:
        pending = self.pending
        size = min(len(pending), self._batch_size)
        batch = [pending.popleft() for _ in range(size)]
        # Fills left behind arrived while the previous batch was written: they are already due.
        self._first_arrival = -_NEVER if pending else None
        if not self._space.is_set():
            self._space.set()
        return batch

    def take_ahead(self) -> list[Fill]:
        """The next batch, to be sent behind the one in flight; it holds its room here until
        `written_ahead` is called."""
        batch = self.take_batch()
        self._ahead += len(batch)
        return batch

    def written_ahead(self, batch: list[Fill]) -> None:
        """The batch taken ahead is being written now: its room is free."""
        self._ahead -= len(batch)
        self._space.set()

    def take_all(self) -> list[Fill]:
        """Empty the queue (the writer failed): every fill still queued, in order (a batch
        taken ahead is the writer's to give back)."""
        fills = list(self.pending)
        self.pending.clear()
        self._ahead = 0
        return fills
