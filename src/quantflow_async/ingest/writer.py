"""TradeWriter: many producers, one bounded queue, one task that commits fills in batches.

Producers call `submit()`; the queue (fill_queue.py) is bounded by `max_queue`, so a full
queue makes them wait (back-pressure), and a producer that never finds it full still yields to
the event loop about every millisecond. One task takes up to `batch_size` fills, at the latest
`max_latency` seconds after they arrived, and commits them with a token in one transaction
(committer.py); a batch the database refuses is isolated fill by fill (isolation.py). While a
batch is in flight, the next one, if due, is sent behind it (ahead.py), and settled after it.
That task is batch_loop.py's; this module holds the producers' side and the lifecycle, whose
phase (writer_state.py) both share.

The task belongs to the writer, not to the scope that opened it: cancelling that scope drains
the queue before the cancellation goes on, and a fill is handed back in `unwritten` only if it
was not committed.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.lowlevel
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.closing import close_after_block
from quantflow_async.config import Settings, WriterOptions
from quantflow_async.errors import (
    FillRejected,
    InvalidValue,
    QueueFull,
    WriterClosed,
    WriterFailed,
    WriterNotRunning,
)
from quantflow_async.ingest.batch_loop import BatchLoop
from quantflow_async.ingest.fill_queue import FillQueue
from quantflow_async.ingest.own_task import OwnTask
from quantflow_async.ingest.rejections import RejectHandler as RejectHandler  # for database.py
from quantflow_async.ingest.rejections import Rejections
from quantflow_async.ingest.stats import Ledger, WriterStats
from quantflow_async.ingest.waiters import Waiters
from quantflow_async.ingest.writer_state import Phase, WriterState
from quantflow_async.records import Fill
from quantflow_async.store.repositories._common import storage_error

log = logging.getLogger(__name__)


YIELD_EVERY_SECONDS = 0.001
"""A producer that never finds the queue full yields to the event loop this often."""
_YIELD_CHECK_EVERY = 32  # submits between two looks at the clock
_TASK_NAME = "quantflow_async.ingest.writer.TradeWriter._run"
_SUBMIT_MANY_SLICE = 512  # fills submit_many queues between two looks at the clock


class TradeWriter:
    """Batched, back-pressured ingestion of fills. Make one with `Database.writer()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        options: WriterOptions,
        *,
        on_reject: RejectHandler | None = None,
    ) -> None:
        self.options = options
        self._state = WriterState()
        self._ledger = Ledger(options.max_rejected)
        self._queue = FillQueue(options)
        self._waiters = Waiters(self._ledger)
        self._loop = BatchLoop(
            engine, settings, options, state=self._state, queue=self._queue,
            ledger=self._ledger, rejections=Rejections(self._ledger, on_reject),
            waiters=self._waiters,
        )  # fmt: skip
        self._own = OwnTask(self._loop.run, _TASK_NAME, self._close_unrun)
        self._since_yield_check = 0
        self._last_yield = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> TradeWriter:
        if self._state.phase is not Phase.NEW:
            raise WriterNotRunning("a TradeWriter can be started once; make a new one")
        self._state.phase = Phase.OPENING
        try:
            await self._loop.committer.connect()
        except BaseException as exc:
            await self._loop.committer.disconnect()
            self._state.close()
            self._own.finished.set()  # nothing to drain: a later aclose() returns at once
            if isinstance(exc, Exception):
                storage_error(exc, "opening the writer's connection")
            raise
        # No await between here and `return`: once the connection is open, the writer owns a
        # task and is closed through __aexit__, whatever cancellation is pending. A task of
        # its own, in no task group: its end, however it comes, cancels nothing of the owner's.
        self._own.start()
        if self._state.phase is Phase.OPENING:  # else aclose() came from another task meanwhile
            self._state.phase = Phase.OPEN
        self._last_yield = anyio.current_time()
        log.info(
            "writer started (batch_size=%d, max_latency=%.3fs, max_queue=%d)",
            self.options.batch_size,
            self.options.max_latency,
            self.options.max_queue,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        block_error = exc_info[1]
        try:
            await close_after_block(
                self.aclose,
                block_error,
                WriterFailed,
                lambda: log.error(
                    "writer failed while the block raised %r; %d fills are in writer.unwritten",
                    block_error,
                    len(self.unwritten),
                ),
            )
        finally:
            self._own.task = None  # finished: aclose waited for it

    async def aclose(self) -> None:
        """Stop accepting, commit everything accepted, stop the task. Idempotent; any task
        may call it.

        Not cancellable: a cancellation that arrives meanwhile is raised once the queue is
        drained (each commit is bounded by `commit_timeout`). Raises WriterFailed (with
        `.unwritten`) if the database could not take the fills.
        """
        if self._state.phase in (Phase.OPENING, Phase.OPEN):
            self._state.close()
            self._queue.wake()
            self._queue.release_producers()
            await self._own.wait()
            log.info("writer stopped: %s", self.stats())
        elif self._state.phase is not Phase.NEW:
            await self._own.wait()
        self._own.task = None  # finished: nothing left to warn about when the writer is collected
        if self._state.failure is not None:
            raise self._state.failure

    def _close_unrun(self) -> None:
        """The writer's task was cancelled before its first step (see OwnTask): as when such a
        cancellation reaches it running, the writer closes after draining."""
        self._loop.close_draining("its task was cancelled before it ran; a new one runs")

    def __del__(self, _warn: Any = warnings.warn) -> None:
        own = getattr(self, "_own", None)
        if own is not None and own.task is not None:
            _warn(
                "TradeWriter was never closed; use `async with db.writer() as writer:`",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    # -- producers ------------------------------------------------------------------------

    async def submit(self, fill: Fill, *, wait: bool = False) -> None:
        """Queue `fill`; wait only while the queue is full.

        With `wait=True`, return once the fill is committed (raise FillRejected if the database
        refused it). A cancelled submit has either queued the fill whole or not at all; once
        queued, the fill is committed even if the caller stops waiting for it.
        """
        self._check_fill(fill)
        while self._queue.room <= 0:
            await self._queue.wait_for_room()
            self._check_accepting()
        self._enqueue(fill)
        if wait:
            await self._waiters.wait(self._ledger.submitted, single=True)
            return
        self._since_yield_check += 1
        if self._since_yield_check >= _YIELD_CHECK_EVERY:
            await self._yield_if_due()

    async def _yield_if_due(self) -> None:
        self._since_yield_check = 0
        now = anyio.current_time()
        if now - self._last_yield >= YIELD_EVERY_SECONDS:
            await anyio.lowlevel.checkpoint()
            self._last_yield = anyio.current_time()

    def submit_nowait(self, fill: Fill) -> None:
        """Queue `fill` now, or raise QueueFull if the queue holds `max_queue` fills."""
        self._check_fill(fill)
        if self._queue.room <= 0:
            raise QueueFull(f"the writer's queue holds max_queue={self.options.max_queue} fills")
        self._enqueue(fill)

    async def submit_many(self, fills: Iterable[Fill]) -> int:
        """Queue fills in order, waiting for space as needed; return how many were queued.

        If cancelled part-way, the fills queued before the cancellation stay queued.
        """
        queued = 0
        remaining = iter(fills)
        for fill in remaining:
            await self.submit(fill)  # waits for space, if the queue is full
            queued += 1
            # Then as many as there is room for at once, a slice at a time, so the loop still
            # gets a turn about once a millisecond.
            while (room := self._queue.room) > 0:
                self._check_accepting()
                wanted = min(room, _SUBMIT_MANY_SLICE)
                some: list[Fill] = []
                try:
                    some.extend(itertools.islice(remaining, wanted))
                except BaseException:
                    self._enqueue_many(some)  # what the input gave before it raised
                    raise
                if not some:
                    return queued
                queued += self._enqueue_many(some)
                if len(some) < wanted:
                    return queued
                await self._yield_if_due()
        return queued

    async def flush(self) -> None:
        """Return once every fill submitted before this call is committed or rejected."""
        self._check_running()
        submitted, state = self._ledger.submitted, self._state
        if state.settled >= submitted:
            return
        state.flush_target = max(state.flush_target, submitted)
        self._queue.wake()
        await self._waiters.wait(submitted, single=False)

    def stats(self) -> WriterStats:
        return self._ledger.snapshot(len(self._queue))

    @property
    def rejected(self) -> tuple[FillRejected, ...]:
        """The most recent refusals (up to `max_rejected`), oldest first; `stats().rejected`
        counts them all."""
        return tuple(self._ledger.recent_rejections)

    @property
    def unwritten(self) -> tuple[Fill, ...]:
        """Accepted fills that were not committed because the writer failed (else empty)."""
        failure = self._state.failure
        return () if failure is None else failure.unwritten

    @property
    def connection_pid(self) -> int | None:
        """The process holding the write connection: the SQLite worker process, or the
        PostgreSQL server process serving it (for `pg_terminate_backend`); None while the
        writer has no connection."""
        return self._loop.committer.pid

    def _check_fill(self, fill: object) -> None:
        if type(fill) is not Fill:
            raise InvalidValue("fill", f"expected Fill, got {type(fill).__name__}")
        self._check_accepting()

    def _check_accepting(self) -> None:
        if not self._state.accepting:
            self._check_running()
            raise WriterClosed("the writer is closed; it accepts no more fills")

    def _check_running(self) -> None:
        if self._state.failure is not None:
            raise self._state.failure
        if self._state.phase is Phase.NEW:
            raise WriterNotRunning("the writer is not started; use `async with db.writer() as w:`")

    def _enqueue_many(self, fills: list[Fill]) -> int:
        """Queue `fills` (room is known); a bad one raises after the ones before it are queued."""
        self._check_accepting()
        for position, fill in enumerate(fills):
            if type(fill) is not Fill:
                self._enqueue_many(fills[:position])
                self._check_fill(fill)
        if not fills:
            return 0
        self._queue.put_many(fills)
        self._ledger.submitted += len(fills)
        return len(fills)

    def _enqueue(self, fill: Fill) -> None:
        self._queue.put(fill)
        self._ledger.submitted += 1
