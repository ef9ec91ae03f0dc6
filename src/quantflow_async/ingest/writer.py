"""TradeWriter: many producers, one bounded queue, one task that commits fills in batches.

Producers call `submit()`; the queue is a deque bounded by `max_queue`, so a full queue makes
producers wait (back-pressure) and memory never grows with the number of fills. One writer task
takes up to `batch_size` fills, at the latest `max_latency` seconds after they arrived, and
commits them in one transaction on its own connection: for a SQLite file, a connection held by
a worker process (batch_stores.py), so the insert never competes with the event loop for the
GIL. A batch the database refuses is split until every good fill is committed and every bad one
is isolated and reported. Passing faults are retried; a database that is gone stops the writer
and hands back every accepted fill it did not commit.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.config import Settings, WriterDefaults
from quantflow_async.errors import (
    FillRejected,
    InvalidValue,
    QueueFull,
    WriterClosed,
    WriterFailed,
)
from quantflow_async.ingest.batch_stores import batch_store_for
from quantflow_async.records import Fill
from quantflow_async.store.driver_errors import Fault, classify, describe
from quantflow_async.store.repositories._common import storage_error
from quantflow_async.store.repositories.trades import TradeRepository

log = logging.getLogger(__name__)

RejectHandler = Callable[[FillRejected], None]

_LATENCY_SAMPLES = 10_000
_NEVER = math.inf


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of a writer's counters. Latencies are in seconds; None before any sample."""

    submitted: int
    written: int
    duplicates: int
    rejected: int
    batches: int
    queue_depth: int
    commit_p50: float | None
    commit_p99: float | None
    wait_latency_p50: float | None
    wait_latency_p99: float | None


class _Waiter:
    """Someone awaiting the fate of every fill up to sequence number `seq`."""

    __slots__ = ("done", "error", "seq", "single", "since")

    def __init__(self, seq: int, single: bool, since: float) -> None:
        self.seq = seq
        self.single = single
        self.since = since
        self.done = anyio.Event()
        self.error: BaseException | None = None


class _RowFault(Exception):
    """Internal: the database refused the rows of one attempt."""


class TradeWriter:
    """Batched, back-pressured ingestion of fills. Make one with `Database.writer()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        trades: TradeRepository,
        settings: Settings,
        options: WriterDefaults,
        *,
        on_reject: RejectHandler | None = None,
    ) -> None:
        self._trades = trades
        self._backend = batch_store_for(engine, settings)
        self.options = options
        self._on_reject = on_reject
        self._pending: deque[Fill] = deque()
        self._waiters: deque[_Waiter] = deque()
        self._submitted = 0
        self._settled = 0
        self._written = 0
        self._duplicates = 0
        self._batches = 0
        self._commit_seconds: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self._wait_seconds: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self.rejected: list[FillRejected] = []
        """Every fill the database refused, with the reason, in the order found."""
        self._wake_at: float = _NEVER
        self._wakeup = anyio.Event()
        self._space = anyio.Event()
        self._finished = anyio.Event()
        self._first_arrival: float | None = None
        self._flush_target = 0
        self._in_flight: list[Fill | None] = []
        self._accepting = False
        self._started = False
        self._closed = False
        self._failure: WriterFailed | None = None
        self._task_group: TaskGroup | None = None
        self._connected = False

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> TradeWriter:
        if self._started:
            raise WriterClosed("a TradeWriter can be started once; make a new one")
        self._started = True
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            await task_group.start(self._run)
        except BaseException as exc:
            await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._task_group = task_group
        self._accepting = True
        log.info(
            "writer started (batch_size=%d, max_latency=%.3fs, max_queue=%d)",
            self.options.batch_size,
            self.options.max_latency,
            self.options.max_queue,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._drain_and_stop()
        except WriterFailed:
            if exc is None:
                raise
            log.error(
                "writer failed while the block raised %r; %d fills are in writer.unwritten",
                exc,
                len(self.unwritten),
            )

    async def aclose(self) -> None:
        """Stop accepting, commit everything accepted, stop the task. Idempotent.

        Raises WriterFailed (with `.unwritten`) if the database could not take the fills.
        """
        await self._drain_and_stop()

    async def _drain_and_stop(self) -> None:
        self._accepting = False
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            self._closed = True
            self._wakeup.set()
            self._space.set()
            # Draining is not cancellable: accepted fills are committed or handed back.
            with anyio.CancelScope(shield=True):
                await self._finished.wait()
            await task_group.__aexit__(None, None, None)
            log.info("writer stopped: %s", self.stats())
        if self._failure is not None:
            raise self._failure

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_task_group", None) is not None:
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
        while len(self._pending) >= self.options.max_queue:
            if self._space.is_set():
                self._space = anyio.Event()
            await self._space.wait()
            self._check_accepting()
        self._enqueue(fill)
        if wait:
            await self._wait_for(_Waiter(self._submitted, True, anyio.current_time()))

    def submit_nowait(self, fill: Fill) -> None:
        """Queue `fill` now, or raise QueueFull if the queue holds `max_queue` fills."""
        self._check_fill(fill)
        if len(self._pending) >= self.options.max_queue:
            raise QueueFull(f"the writer's queue holds max_queue={self.options.max_queue} fills")
        self._enqueue(fill)

    async def submit_many(self, fills: Iterable[Fill]) -> int:
        """Queue fills in order, waiting for space as needed; return how many were queued.

        If cancelled part-way, the fills queued before the cancellation stay queued.
        """
        queued = 0
        for fill in fills:
            await self.submit(fill)
            queued += 1
        return queued

    async def flush(self) -> None:
        """Return once every fill submitted before this call is committed or rejected."""
        self._check_running()
        if self._settled >= self._submitted:
            return
        self._flush_target = max(self._flush_target, self._submitted)
        self._wakeup.set()
        await self._wait_for(_Waiter(self._submitted, False, anyio.current_time()))

    def stats(self) -> WriterStats:
        commits = sorted(self._commit_seconds)
        waits = sorted(self._wait_seconds)
        return WriterStats(
            submitted=self._submitted,
            written=self._written,
            duplicates=self._duplicates,
            rejected=len(self.rejected),
            batches=self._batches,
            queue_depth=len(self._pending),
            commit_p50=_percentile(commits, 50),
            commit_p99=_percentile(commits, 99),
            wait_latency_p50=_percentile(waits, 50),
            wait_latency_p99=_percentile(waits, 99),
        )

    @property
    def unwritten(self) -> tuple[Fill, ...]:
        """Accepted fills that were not committed because the writer failed (else empty)."""
        return () if self._failure is None else self._failure.unwritten

    def _check_fill(self, fill: object) -> None:
        if type(fill) is not Fill:
            raise InvalidValue("fill", f"expected Fill, got {type(fill).__name__}")
        self._check_accepting()

    def _check_accepting(self) -> None:
        if not self._accepting:
            self._check_running()
            raise WriterClosed("the writer is closed; it accepts no more fills")

    def _check_running(self) -> None:
        if self._failure is not None:
            raise self._failure
        if not self._started:
            raise WriterClosed("the writer is not started; use `async with db.writer() as w:`")

    def _enqueue(self, fill: Fill) -> None:
        pending = self._pending
        if not pending:
            self._first_arrival = anyio.current_time()
        pending.append(fill)
        self._submitted += 1
        if len(pending) >= self._wake_at:
            self._wakeup.set()

    async def _wait_for(self, waiter: _Waiter) -> None:
        self._waiters.append(waiter)
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    # -- the writer task ------------------------------------------------------------------

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._connect()
        except Exception as exc:
            await self._disconnect()
            storage_error(exc, "opening the writer's connection")
        task_status.started()
        try:
            while True:
                await self._wait_for_batch()
                if not self._pending:
                    if self._closed:
                        return
                    continue
                await self._write(self._take_batch())
        except BaseException as exc:
            self._fail(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._disconnect()
            self._finished.set()

    async def _wait_for_batch(self) -> None:
        """Sleep until a full batch is queued, the oldest fill is due, or the writer closes."""
        options = self.options
        while not self._closed:
            queued = len(self._pending)
            if queued >= options.batch_size:
                return
            if queued and self._first_arrival is not None:
                remaining = self._first_arrival + options.max_latency - anyio.current_time()
                if remaining <= 0 or self._flush_target > self._settled:
                    return
                self._wake_at = options.batch_size
                with anyio.move_on_after(remaining):
                    await self._sleep()
                continue
            self._wake_at = 1
            await self._sleep()

    async def _sleep(self) -> None:
        try:
            await self._wakeup.wait()
        finally:
            self._wakeup = anyio.Event()
            self._wake_at = _NEVER

    def _take_batch(self) -> list[Fill]:
        pending = self._pending
        size = min(len(pending), self.options.batch_size)
        batch = [pending.popleft() for _ in range(size)]
        # Fills left behind arrived while the previous batch was written: they are already due.
        self._first_arrival = -_NEVER if pending else None
        if not self._space.is_set():
            self._space.set()
        return batch

    async def _write(self, batch: list[Fill]) -> None:
        first_seq = self._settled + 1
        started = anyio.current_time()
        rejected: dict[int, FillRejected] = {}
        self._in_flight = list(batch)
        inserted = await self._store_isolating(batch, 0, rejected)
        self._in_flight = []
        self._commit_seconds.append(anyio.current_time() - started)
        self._batches += 1
        self._written += inserted
        self._duplicates += len(batch) - inserted - len(rejected)
        self._settled += len(batch)
        for offset in sorted(rejected):
            self._report(rejected[offset])
        self._settle_waiters({first_seq + offset: err for offset, err in rejected.items()})

    async def _store_isolating(
        self, fills: list[Fill], offset: int, rejected: dict[int, FillRejected]
    ) -> int:
        """Store `fills`, splitting on refusal until each refused fill stands alone."""
        try:
            inserted = await self._store(fills)
        except _RowFault as fault:
            if len(fills) == 1:
                reason = await self._explain(fills[0], fault.__cause__ or fault)
                rejected[offset] = FillRejected(fills[0], reason)
                self._in_flight[offset] = None
                return 0
        else:
            self._in_flight[offset : offset + len(fills)] = [None] * len(fills)
            return inserted
        middle = len(fills) // 2
        left = await self._store_isolating(fills[:middle], offset, rejected)
        right = await self._store_isolating(fills[middle:], offset + middle, rejected)
        return left + right

    async def _explain(self, fill: Fill, exc: BaseException) -> str:
        try:
            return str(await self._trades.explain_rejection([fill], exc))
        except Exception:  # the database's own message is still a reason
            return describe(exc)

    async def _store(self, fills: Sequence[Fill]) -> int:
        """One transaction, retried with backoff while the fault is a passing one."""
        delay = self.options.retry_initial_delay
        for attempt in range(self.options.retry_attempts + 1):
            try:
                if not self._connected:
                    await self._connect()
                return await self._backend.store(fills)
            except Exception as exc:
                fault = classify(exc)
                if fault is Fault.ROW:
                    raise _RowFault() from exc
                if fault is Fault.FATAL or attempt == self.options.retry_attempts:
                    raise
                log.warning(
                    "writer: %s; retrying in %.2fs (attempt %d of %d)",
                    describe(exc),
                    delay,
                    attempt + 1,
                    self.options.retry_attempts,
                )
                await self._disconnect()
                await anyio.sleep(delay)
                delay = min(delay * 2, self.options.retry_max_delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _connect(self) -> None:
        await self._backend.open()
        self._connected = True

    async def _disconnect(self) -> None:
        # Always ask the backend to let go: an open() that failed half-way may hold a connection.
        self._connected = False
        with anyio.CancelScope(shield=True):
            try:
                await self._backend.aclose()
            except Exception as exc:  # the connection is already broken; nothing to save
                log.debug("writer: closing a broken connection: %s", describe(exc))

    def _report(self, rejection: FillRejected) -> None:
        self.rejected.append(rejection)
        log.warning("writer: %s", rejection)
        if self._on_reject is None:
            return
        try:
            self._on_reject(rejection)
        except Exception:
            log.exception("writer: the on_reject callback raised; the writer goes on")

    def _settle_waiters(self, rejected: dict[int, FillRejected]) -> None:
        now = anyio.current_time()
        waiters = self._waiters
        while waiters and waiters[0].seq <= self._settled:
            waiter = waiters.popleft()
            if waiter.single:
                waiter.error = rejected.get(waiter.seq)
                self._wait_seconds.append(now - waiter.since)
            waiter.done.set()

    def _fail(self, exc: BaseException) -> None:
        unwritten = [fill for fill in self._in_flight if fill is not None]
        unwritten.extend(self._pending)
        self._in_flight = []
        self._pending.clear()
        self._accepting = False
        cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
        reason = "cancelled" if cancelled else describe(exc)
        failure = WriterFailed(f"the writer stopped: {reason}", unwritten)
        failure.__cause__ = exc
        self._failure = failure
        log.error("%s", failure)
        for waiter in self._waiters:
            waiter.error = failure
            waiter.done.set()
        self._waiters.clear()
        self._space.set()


def _percentile(ordered: list[float], percent: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))
    return ordered[index]
