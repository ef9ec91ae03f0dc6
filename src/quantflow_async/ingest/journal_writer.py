"""JournalWriter: the order journal's bounded queue and the one task that commits it in batches.

Each batch (up to `batch_size` entries, at the latest `max_latency` seconds after the first
arrived) is one transaction of idempotent statements (store/order_journal.py), so a batch
whose outcome is unknown is run again as is. Passing faults are retried with Backoff; any
other fault stops the writer, and every waiting caller, later put or flush gets its error.
The task belongs to the writer: cancelling the scope that opened it drains the queue first.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.config import Settings, WriterOptions
from quantflow_async.errors import StorageError, StorageUnavailable
from quantflow_async.ingest.journal_batches import ClaimSettler, JournalBatch
from quantflow_async.ingest.journal_stores import journal_store
from quantflow_async.ingest.journal_tickets import ClashHandler, Ticket
from quantflow_async.ingest.retry import Backoff
from quantflow_async.ingest.sqlite_worker import JOURNAL_KEY_PREFIX
from quantflow_async.ingest.writer import YIELD_EVERY_SECONDS
from quantflow_async.store.driver_errors import Fault, classify, describe
from quantflow_async.store.journal_batch import JournalEntry
from quantflow_async.store.journal_fence import LeaseFence

log = logging.getLogger(__name__)

_LOOK_EVERY = 16  # calls to room() between two looks at the clock


class WriterState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    """No more entries are taken; the queue is being drained."""
    CLOSED = "closed"
    FAILED = "failed"


class JournalWriter:
    """One bounded queue of journal entries and the task that commits them.

    A venue order id an entry claims is checked against every order on `venue` in the batch's
    own transaction, one read per batch. A claim another order holds is refused there: the
    entry's event is stored as refused (`on_clash`), and its order, in this batch and after,
    is written with the venue order id it had and status unknown, for reconciliation.

    On a SQLite file, the next batch, when one is ready, is sent to the worker process right
    behind the one in flight, so that the worker goes on to it without waiting for this event
    loop; the worker runs it only if the batch before it committed.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        options: WriterOptions,
        *,
        venue: str = "",
        on_clash: ClashHandler | None = None,
        settings: Settings | None = None,
        fence: Callable[[], LeaseFence | None] = lambda: None,
    ) -> None:
        self._options = options
        self._claims = ClaimSettler(on_clash)
        self._store = journal_store(
            engine, settings, options, venue=venue, claims=self._claims,
            next_ready=self._next_ready, fence=fence,
        )  # fmt: skip
        self._queue: deque[tuple[JournalEntry, Ticket]] = deque()
        self._first_arrival: float | None = None
        self._wakeup = anyio.Event()
        self._space = anyio.Event()
        self._finished = anyio.Event()
        self._flush_wanted = False
        self._in_flight: JournalBatch | None = None
        self._batches_taken = 0
        self._last: Ticket | None = None
        self._task: asyncio.Task[None] | None = None
        self._failure: StorageError | None = None
        self.state = WriterState.NEW
        self.events_written = 0
        self.batches = 0
        self._since_look = 0
        self._last_turn = 0.0

    @property
    def on_clash(self) -> ClashHandler | None:
        return self._claims.on_clash

    @on_clash.setter
    def on_clash(self, handler: ClashHandler | None) -> None:
        self._claims.on_clash = handler

    @property
    def connection_pid(self) -> int | None:
        """The process holding the journal's write connection while it has one: the SQLite
        worker process, or the PostgreSQL server process serving it."""
        return self._store.pid

    def start(self) -> None:
        if self.state is not WriterState.NEW:
            raise RuntimeError(f"a JournalWriter starts once; this one is {self.state.value}")
        self.state = WriterState.RUNNING
        self._task = asyncio.get_running_loop().create_task(self._run(), name="JournalWriter")

    # -- producers ------------------------------------------------------------------------

    def check(self) -> None:
        """Raise the writer's failure, or StorageError once it takes no more entries."""
        if self._failure is not None:
            raise self._failure
        if self.state is not WriterState.RUNNING:
            raise StorageError(
                f"the order journal is {self.state.value}; it records no more events"
            )

    async def room(self) -> None:
        """Wait while the queue is full; then `put` can go without waiting.

        A producer that never finds the queue full still gives the event loop a turn about
        once a millisecond, as the TradeWriter's do, so batches commit while it records.
        """
        self._since_look += 1
        if self._since_look >= _LOOK_EVERY:
            self._since_look = 0
            if anyio.current_time() - self._last_turn >= YIELD_EVERY_SECONDS:
                await anyio.lowlevel.checkpoint()
                self._last_turn = anyio.current_time()
        while len(self._queue) >= self._options.max_queue:
            self.check()
            if self._space.is_set():
                self._space = anyio.Event()
            await self._space.wait()
        self.check()

    def room_now(self) -> bool:
        """Whether `put` may go at once, with no `await room()` first: counted as one call of
        room() that neither waited nor gave the loop a turn. A caller that gets False awaits
        room()."""
        if self._since_look + 1 >= _LOOK_EVERY or len(self._queue) >= self._options.max_queue:
            return False
        self._since_look += 1
        self.check()
        return True

    def put(self, entry: JournalEntry) -> Ticket:
        """Queue `entry` now (after `room()`), in the order of the calls."""
        self.check()
        ticket = Ticket()
        if not self._queue:
            self._first_arrival = anyio.current_time()
        self._queue.append((entry, ticket))
        self._last = ticket
        if len(self._queue) >= self._options.batch_size:
            self._wakeup.set()
        elif len(self._queue) == 1:
            self._wakeup.set()  # the task sets its deadline from the first arrival
        return ticket

    async def committed(self, ticket: Ticket, *, raise_refusal: bool = True) -> None:
        """Return once the ticket's entry is committed, asking for its batch now; raise its
        refusal if the batch refused its event (and `raise_refusal`)."""
        if not ticket.done:
            self._flush_wanted = True
            self._wakeup.set()
        await ticket.wait(raise_refusal=raise_refusal)

    async def flush(self) -> None:
        """Return once every entry queued before this call is committed."""
        last = self._last
        if last is None or last.done:
            if self._failure is not None:
                raise self._failure
            return
        await self.committed(last, raise_refusal=False)

    async def aclose(self) -> None:
        """Take no more entries, commit what is queued, end the task. Idempotent.

        Not cancellable: a cancellation that arrives meanwhile is raised once the queue is
        drained. Raises the writer's failure if it could not commit.
        """
        if self.state is WriterState.RUNNING:
            self.state = WriterState.CLOSING
            self._wakeup.set()
        if self._task is not None:
            await self._wait_until_finished()
            self._task = None
        if self.state is WriterState.NEW:
            self.state = WriterState.CLOSED
        if self._failure is not None:
            raise self._failure

    async def _wait_until_finished(self) -> None:
        cancelled: BaseException | None = None
        while not self._finished.is_set():
            try:
                with anyio.CancelScope(shield=True):
                    await self._finished.wait()
            except anyio.get_cancelled_exc_class() as exc:
                cancelled = exc  # asyncio's own Task.cancel() passes through shields
        if cancelled is not None:
            raise cancelled

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_task", None) is not None:
            _warn("JournalWriter was never closed", ResourceWarning, source=self, stacklevel=2)

    # -- the task -------------------------------------------------------------------------

    async def _run(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                while batch := await self._take():
                    await self._commit(batch)
                self.state = WriterState.CLOSED
            except BaseException as exc:
                self._fail(exc)
                if not isinstance(exc, Exception):
                    raise
            finally:
                try:
                    await self._store.aclose()
                finally:
                    self._finished.set()  # whatever stopping the worker met: aclose() waits

    async def _take(self) -> JournalBatch | None:
        """The batch sent ahead, if any; else the next one, once it is due."""
        ahead = self._store.take_ahead()
        if ahead is not None:
            return ahead
        while self.state is WriterState.RUNNING and not self._ready():
            try:
                if self._queue and self._first_arrival is not None:
                    due = self._first_arrival + self._options.max_latency - anyio.current_time()
                    with anyio.move_on_after(due):
                        await self._wakeup.wait()
                else:
                    await self._wakeup.wait()
            except anyio.get_cancelled_exc_class():
                self._absorb_cancellation()
            self._wakeup = anyio.Event()
        return self._taken() if self._queue else None

    def _ready(self) -> bool:
        """Whether a batch is full or due, a flush is asked for, or the writer closes."""
        queued = len(self._queue)
        if not queued:
            return False
        if queued >= self._options.batch_size or self._flush_wanted:
            return True
        if self.state is not WriterState.RUNNING:
            return True
        first = self._first_arrival
        return first is not None and anyio.current_time() >= first + self._options.max_latency

    def _taken(self) -> JournalBatch:
        size = min(len(self._queue), self._options.batch_size)
        entries = [self._queue.popleft() for _ in range(size)]
        self._first_arrival = anyio.current_time() if self._queue else None
        self._flush_wanted = self._flush_wanted and bool(self._queue)
        self._space.set()
        self._batches_taken += 1
        return JournalBatch.of(entries, f"{JOURNAL_KEY_PREFIX}{self._batches_taken}")

    async def _commit(self, batch: JournalBatch) -> None:
        self._in_flight = batch
        self._claims.keep_refused_claims_out(batch.rows)
        backoff = Backoff(self._options)
        while True:
            try:
                await self._attempt(batch)
                break
            except anyio.get_cancelled_exc_class():
                self._absorb_cancellation()  # the batch is run again: every statement is idempotent
                continue
            except Exception as exc:
                if classify(exc) is not Fault.TRANSIENT or backoff.exhausted:
                    raise
                delay = backoff.next_delay()
                log.warning("journal: %s; retrying the batch in %.2fs", describe(exc), delay)
            await self._pause(delay)
        self._in_flight = None
        self.batches += 1
        self.events_written += len(batch.rows.events)
        for _, ticket in batch.entries:
            ticket.finish(refused=batch.refused.get(ticket))

    async def _attempt(self, batch: JournalBatch) -> None:
        with anyio.fail_after(self._options.commit_timeout):
            await self._store.write(batch)

    def _next_ready(self) -> JournalBatch | None:
        """The next batch, taken from the queue if it is ready to go behind the one in flight."""
        if self.state is WriterState.FAILED or not self._ready():
            return None
        return self._taken()

    async def _pause(self, seconds: float) -> None:
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            self._absorb_cancellation()

    def _absorb_cancellation(self) -> None:
        """asyncio's own Task.cancel() reaches the task through its shield (the loop shutting
        down): take it as a request to close, drain, then end."""
        log.warning(
            "journal: cancelled from outside; committing %d entries first", len(self._queue)
        )
        if self.state is WriterState.RUNNING:
            self.state = WriterState.CLOSING
        with contextlib.suppress(RuntimeError):
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()

    def _fail(self, exc: BaseException) -> None:
        kind = StorageUnavailable if classify(exc) is Fault.FATAL else StorageError
        failure = kind(
            f"the order journal stopped: a batch could not be committed: {describe(exc)}; "
            "what the journal accepted since its last commit may not be stored; open a new "
            "journal and restore(), which reads what was"
        )
        failure.__cause__ = exc
        self._failure = failure
        self.state = WriterState.FAILED
        log.error("%s", failure)
        taken = [batch for batch in (self._in_flight, self._store.ahead) if batch is not None]
        for ticket in [
            *(t for batch in taken for t in batch.tickets),
            *(t for _, t in self._queue),
        ]:
            ticket.finish(failure)
        self._queue.clear()
        self._space.set()
