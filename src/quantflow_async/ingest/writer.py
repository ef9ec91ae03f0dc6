"""TradeWriter: many producers, one bounded queue, one task that commits fills in batches.

Producers call `submit()`; the queue is bounded by `max_queue`, so a full queue makes them
wait (back-pressure), and a producer that never finds it full still yields to the event loop
about every millisecond. One task takes up to `batch_size` fills, at the latest `max_latency`
seconds after they arrived, and commits them with a token in one transaction (batch_store.py);
a batch the database refuses is isolated fill by fill (isolation.py); passing faults are
retried (retry.py), and a retry whose outcome is unknown asks the token first.

The task belongs to the writer, not to the scope that opened it: cancelling that scope drains
the queue before the cancellation goes on, and a fill is handed back in `unwritten` only if it
was not committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import math
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.config import Settings, WriterDefaults
from quantflow_async.errors import (
    FillRejected,
    InvalidValue,
    QueueFull,
    StorageError,
    WriterClosed,
    WriterFailed,
    WriterNotRunning,
)
from quantflow_async.ingest.batch_store import BatchStore, batch_store_for
from quantflow_async.ingest.isolation import RowsRefused, store_isolating
from quantflow_async.ingest.retry import Backoff
from quantflow_async.ingest.stats import Ledger, WriterStats
from quantflow_async.records import Fill
from quantflow_async.store.driver_errors import Fault, classify, describe
from quantflow_async.store.references import broken_references
from quantflow_async.store.repositories._common import storage_error

log = logging.getLogger(__name__)

RejectHandler = Callable[[FillRejected], None]

YIELD_EVERY_SECONDS = 0.001
"""A producer that never finds the queue full yields to the event loop this often."""
_YIELD_CHECK_EVERY = 32  # submits between two looks at the clock
_TASK_NAME = "quantflow_async.ingest.writer.TradeWriter._run"
_SUBMIT_MANY_SLICE = 512  # fills submit_many queues between two looks at the clock
_NEVER = math.inf


class _Waiter:
    """Someone awaiting the fate of every fill up to sequence number `seq` (or of that one)."""

    __slots__ = ("done", "error", "seq", "single", "since")

    def __init__(self, seq: int, single: bool, since: float) -> None:
        self.seq = seq
        self.single = single
        self.since = since
        self.done = anyio.Event()
        self.error: BaseException | None = None


class TradeWriter:
    """Batched, back-pressured ingestion of fills. Make one with `Database.writer()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        options: WriterDefaults,
        *,
        on_reject: RejectHandler | None = None,
    ) -> None:
        if on_reject is not None and _is_async_callable(on_reject):
            raise InvalidValue(
                "on_reject",
                "must be a plain function: it runs inside the writer's task, which must not "
                "wait on it; hand the rejection to a queue or task of your own from there",
            )
        self._engine = engine
        self._backend: BatchStore = batch_store_for(engine, settings, options)
        self.options = options
        self._on_reject = on_reject
        self._ledger = Ledger(options.max_rejected)
        self._pending: deque[Fill] = deque()
        self._waiters: deque[_Waiter] = deque()
        self._settled = 0  # sequence number of the last fill whose fate is known
        self._wake_at: float = _NEVER
        self._wakeup = anyio.Event()
        self._space = anyio.Event()
        self._finished = anyio.Event()
        self._first_arrival: float | None = None
        self._flush_target = 0
        self._in_flight: list[Fill | None] = []
        self._batch_rejected: dict[int, FillRejected] = {}
        self._accepting = False
        self._started = False
        self._closing = False
        self._failure: WriterFailed | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._writer_id = uuid.uuid4().hex
        self._batch_number = 0
        self._last_token: str | None = None
        self._since_yield_check = 0
        self._last_yield = 0.0
        self._run_began = False

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> TradeWriter:
        if self._started:
            raise WriterNotRunning("a TradeWriter can be started once; make a new one")
        self._started = True
        try:
            await self._connect()
        except BaseException as exc:
            await self._disconnect()
            self._closing = True
            self._finished.set()  # nothing to drain: a later aclose() returns at once
            if isinstance(exc, Exception):
                storage_error(exc, "opening the writer's connection")
            raise
        # No await between here and `return`: once the connection is open, the writer owns a
        # task and is closed through __aexit__, whatever cancellation is pending. A task of
        # its own, in no task group: its end, however it comes, cancels nothing of the owner's.
        self._start_task()
        self._accepting = not self._closing  # aclose() from another task while this opened
        self._last_yield = anyio.current_time()
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
            await self.aclose()
        except WriterFailed:
            if exc is None:
                raise
            log.error(
                "writer failed while the block raised %r; %d fills are in writer.unwritten",
                exc,
                len(self.unwritten),
            )
        finally:
            self._task = None  # finished: aclose waited for it

    async def aclose(self) -> None:
        """Stop accepting, commit everything accepted, stop the task. Idempotent; any task
        may call it.

        Not cancellable: a cancellation that arrives meanwhile is raised once the queue is
        drained (each commit is bounded by `commit_timeout`). Raises WriterFailed (with
        `.unwritten`) if the database could not take the fills.
        """
        if self._started and not self._closing:
            self._closing = True
            self._accepting = False
            self._wakeup.set()
            self._space.set()
            await self._wait_until_finished()
            log.info("writer stopped: %s", self.stats())
        elif self._started:
            await self._wait_until_finished()
        self._task = None  # finished: nothing left to warn about when the writer is collected
        if self._failure is not None:
            raise self._failure

    async def _wait_until_finished(self) -> None:
        cancelled: BaseException | None = None
        while not self._finished.is_set():
            try:
                with anyio.CancelScope(shield=True):
                    await self._finished.wait()
            except anyio.get_cancelled_exc_class() as exc:
                # asyncio's own Task.cancel() passes through shields; the drain goes on, and
                # the cancellation is raised once it is done.
                cancelled = exc
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            task.exception()  # kept in self._failure already: retrieved, not logged as lost
        if cancelled is not None:
            raise cancelled

    def _start_task(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=_TASK_NAME)
        self._task.add_done_callback(self._restart_if_never_ran)

    def _restart_if_never_ran(self, task: asyncio.Task[None]) -> None:
        """asyncio's Task.cancel() that reaches the writer's task before its first step
        closes its coroutine unrun: nothing would ever take a batch or end the writer. Its
        body runs in a new task then and, as when such a cancellation reaches the writer
        running, the writer closes after draining."""
        if not task.cancelled() or self._run_began or self._finished.is_set():
            return
        log.warning(
            "writer: its task was cancelled before it ran; draining %d fills in a new one",
            len(self._pending),
        )
        self._closing = True
        self._accepting = False
        self._space.set()
        self._start_task()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_task", None) is not None:
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
            await self._wait_for(_Waiter(self._ledger.submitted, True, anyio.current_time()))
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
        if len(self._pending) >= self.options.max_queue:
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
            while (room := self.options.max_queue - len(self._pending)) > 0:
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
        submitted = self._ledger.submitted
        if self._settled >= submitted:
            return
        self._flush_target = max(self._flush_target, submitted)
        self._wakeup.set()
        await self._wait_for(_Waiter(submitted, False, anyio.current_time()))

    def stats(self) -> WriterStats:
        return self._ledger.snapshot(len(self._pending))

    @property
    def rejected(self) -> tuple[FillRejected, ...]:
        """The most recent refusals (up to `max_rejected`), oldest first; `stats().rejected`
        counts them all."""
        return tuple(self._ledger.recent_rejections)

    @property
    def unwritten(self) -> tuple[Fill, ...]:
        """Accepted fills that were not committed because the writer failed (else empty)."""
        return () if self._failure is None else self._failure.unwritten

    @property
    def connection_pid(self) -> int | None:
        """The process holding the write connection: the SQLite worker process, or the
        PostgreSQL server process serving it (for `pg_terminate_backend`); None while the
        writer has no connection."""
        return self._backend.pid

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
        pending = self._pending
        if not pending:
            self._first_arrival = anyio.current_time()
        pending.extend(fills)
        self._ledger.submitted += len(fills)
        if len(pending) >= self._wake_at:
            self._wakeup.set()
        return len(fills)

    def _enqueue(self, fill: Fill) -> None:
        pending = self._pending
        if not pending:
            self._first_arrival = anyio.current_time()
        pending.append(fill)
        self._ledger.submitted += 1
        if len(pending) >= self._wake_at:
            self._wakeup.set()

    async def _wait_for(self, waiter: _Waiter) -> None:
        self._waiters.append(waiter)
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    # -- the writer task ------------------------------------------------------------------

    async def _run(self) -> None:
        # Shielded: the writer's own task ends when the queue is drained, never because the
        # scope that opened the writer was cancelled.
        self._run_began = True
        with anyio.CancelScope(shield=True):
            try:
                while batch := await self._next_batch_or_close():
                    await self._write(batch)
            except BaseException as exc:
                self._fail(exc)
                if not isinstance(exc, Exception):
                    raise
            finally:
                try:
                    await self._disconnect()
                finally:
                    self._finished.set()

    async def _next_batch_or_close(self) -> list[Fill]:
        try:
            return await self._next_batch()
        except anyio.get_cancelled_exc_class():
            self._absorb_cancellation()
            return self._take_batch()

    async def _next_batch(self) -> list[Fill]:
        """Sleep until a full batch is queued, the oldest fill is due, or the writer closes;
        then take the batch (empty once closed and drained)."""
        options = self.options
        while not self._closing:
            queued = len(self._pending)
            if queued >= min(options.batch_size, options.max_queue):
                break
            if queued and self._first_arrival is not None:
                remaining = self._first_arrival + options.max_latency - anyio.current_time()
                if remaining <= 0 or self._flush_target > self._settled:
                    break
                # A queue smaller than a batch is full before the batch is: go then.
                self._wake_at = min(options.batch_size, options.max_queue)
                with anyio.move_on_after(remaining):
                    await self._sleep()
                continue
            self._wake_at = 1
            await self._sleep()
        return self._take_batch()

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
        self._batch_rejected = rejected
        self._in_flight = list(batch)

        def committed(indexes: Sequence[int], inserted: int) -> None:
            self._ledger.committed(len(indexes), inserted)
            for index in indexes:
                self._in_flight[index] = None

        def refused(index: int, reason: str) -> None:
            rejection = FillRejected(batch[index], reason)
            rejected[first_seq + index] = rejection
            self._in_flight[index] = None
            self._report(rejection)

        await store_isolating(_TokenedStore(self), batch, committed, refused)
        self._in_flight = []
        self._ledger.batch_done(anyio.current_time() - started)
        self._settled += len(batch)
        self._settle_waiters(rejected)

    async def _store(self, fills: Sequence[Fill]) -> int:
        """One transaction with a token of its own, retried while the fault is a passing one;
        a retry first asks whether the token (so the batch) was committed after all."""
        self._batch_number += 1
        token = f"{self._writer_id}:{self._batch_number}"
        backoff = Backoff(self.options)
        outcome_unknown = False
        while True:
            try:
                inserted = await self._attempt(fills, token, ask_first=outcome_unknown)
            except anyio.get_cancelled_exc_class():
                # The attempt was cut short anywhere, its transaction perhaps still open:
                # drop the connection, and ask the token on a new one.
                self._absorb_cancellation()
                outcome_unknown = True
                await self._disconnect(abandon=True)
                continue
            except StorageError:
                raise
            except Exception as exc:
                fault = classify(exc)
                if fault is Fault.ROW:
                    raise RowsRefused(describe(exc)) from exc
                if fault is Fault.FATAL or backoff.exhausted:
                    raise
                outcome_unknown = True
                delay = backoff.next_delay()
                log.warning(
                    "writer: %s; retrying in %.2fs (attempt %d of %d)",
                    describe(exc),
                    delay,
                    backoff.attempts,
                    self.options.retry_attempts,
                )
            else:
                self._last_token = token
                return inserted
            await self._disconnect(abandon=True)
            await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            self._absorb_cancellation()  # the pause is over; the retry goes on

    def _absorb_cancellation(self) -> None:
        """asyncio's own Task.cancel() (a second Ctrl-C, the event loop shutting down) passes
        through the writer's shield. Take it as a request to close: the queue is drained, the
        batch in flight finished (its token tells whether it was committed), then the task
        ends."""
        log.warning("writer: cancelled from outside; draining %d fills first", len(self._pending))
        self._closing = True
        self._accepting = False
        self._space.set()
        with contextlib.suppress(RuntimeError):  # not on asyncio: nothing else to undo
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()

    async def _attempt(self, fills: Sequence[Fill], token: str, *, ask_first: bool) -> int:
        with anyio.move_on_after(self.options.commit_timeout):
            if not self._connected:
                await self._connect()
            if ask_first:
                found = await self._backend.lookup(token)
                if found is not None:
                    log.info("writer: a batch whose reply was lost had been committed")
                    return found
            return await self._backend.store(fills, token, self._last_token)
        await self._disconnect(abandon=True)
        raise TimeoutError(
            f"a commit took longer than commit_timeout={self.options.commit_timeout}s; "
            "its connection was dropped"
        )

    async def _refusals(self, fills: Sequence[Fill]) -> dict[int, str]:
        try:
            found = await broken_references(self._engine, fills)
        except anyio.get_cancelled_exc_class():
            self._absorb_cancellation()
            return {}
        except Exception as exc:  # the bisection still finds every bad fill, only slower
            log.debug("writer: could not look for missing references: %s", describe(exc))
            return {}
        return {index: str(error) for index, error in found.items()}

    async def _connect(self) -> None:
        await self._backend.open()
        self._connected = True

    async def _disconnect(self, *, abandon: bool = False) -> None:
        # Always ask the backend to let go: an open() that failed half-way may hold a connection.
        self._connected = False
        try:
            with anyio.CancelScope(shield=True):
                if abandon:
                    await self._backend.abandon()
                else:
                    await self._backend.aclose()
        except anyio.get_cancelled_exc_class():
            self._absorb_cancellation()
            await self._backend.abandon()  # cut short: let go at once
        except Exception as exc:  # the connection is already broken; nothing to save
            log.debug("writer: closing a broken connection: %s", describe(exc))

    def _report(self, rejection: FillRejected) -> None:
        self._ledger.refused(rejection)
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
                self._ledger.waited(now - waiter.since)
            waiter.done.set()

    def _fail(self, exc: BaseException) -> None:
        first_seq = self._settled + 1
        batch_seqs = range(first_seq, first_seq + len(self._in_flight))
        uncommitted = {first_seq + i for i, fill in enumerate(self._in_flight) if fill is not None}
        unwritten = [fill for fill in self._in_flight if fill is not None]
        unwritten.extend(self._pending)
        self._in_flight = []
        self._pending.clear()
        self._accepting = False
        self._ledger.unwritten = len(unwritten)
        failure = WriterFailed(f"the writer stopped: {describe(exc)}", unwritten)
        failure.__cause__ = exc
        self._failure = failure
        log.error("%s", failure)
        for waiter in self._waiters:
            # A fill of the broken batch settled before the failure keeps its own fate.
            settled = waiter.single and waiter.seq in batch_seqs and waiter.seq not in uncommitted
            waiter.error = self._batch_rejected.get(waiter.seq) if settled else failure
            waiter.done.set()
        self._waiters.clear()
        self._space.set()


class _TokenedStore:
    """The writer's store as batch isolation sees it."""

    def __init__(self, writer: TradeWriter) -> None:
        self._writer = writer

    async def store(self, fills: Sequence[Fill]) -> int:
        return await self._writer._store(fills)

    async def find_refused(self, fills: Sequence[Fill]) -> dict[int, str]:
        return await self._writer._refusals(fills)


def _is_async_callable(function: object) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004 - an async __call__ counts too
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)
