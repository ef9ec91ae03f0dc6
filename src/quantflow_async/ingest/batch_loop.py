"""A TradeWriter's task: it takes batches from the queue, commits each with a token
(committer.py), isolates a batch the database refuses (isolation.py), sends the next batch
behind the one in flight when it is due (ahead.py), and settles every fill's fate: committed,
refused, or unwritten when the writer fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.config import Settings, WriterOptions
from quantflow_async.errors import FillRejected, WriterFailed
from quantflow_async.ingest.ahead import Ahead
from quantflow_async.ingest.batch_store import batch_store_for
from quantflow_async.ingest.committer import BatchAttempts, Committer
from quantflow_async.ingest.fill_queue import FillQueue
from quantflow_async.ingest.in_flight import InFlight
from quantflow_async.ingest.isolation import store_isolating
from quantflow_async.ingest.rejections import Rejections
from quantflow_async.ingest.stats import Ledger
from quantflow_async.ingest.waiters import Waiters
from quantflow_async.ingest.writer_state import WriterState
from quantflow_async.records import Fill
from quantflow_async.store.driver_errors import describe

log = logging.getLogger("quantflow_async.ingest.writer")


class BatchLoop:
    """The writer task's body (`run`) and what it keeps: the committer and the batches in
    flight. It reads the queue, and writes the ledger, the waiters and the shared state."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        options: WriterOptions,
        *,
        state: WriterState,
        queue: FillQueue,
        ledger: Ledger,
        rejections: Rejections,
        waiters: Waiters,
    ) -> None:
        backend = batch_store_for(engine, settings, options)
        self.committer = Committer(engine, backend, options, self.absorb_cancellation)
        self._state = state
        self._queue = queue
        self._ledger = ledger
        self._rejections = rejections
        self._waiters = waiters
        self._in_flight = InFlight()

    async def run(self) -> None:
        # Shielded: the writer's own task ends when the queue is drained, never because the
        # scope that opened the writer was cancelled.
        with anyio.CancelScope(shield=True):
            try:
                while True:
                    ahead, self._in_flight.ahead = self._in_flight.ahead, None
                    if ahead is not None:
                        self._queue.written_ahead(ahead[0])
                        await self._write(*ahead)
                    elif batch := await self._next_batch_or_close():
                        await self._write(batch, None)
                    else:
                        break
            except BaseException as exc:
                self._fail(exc)
                if not isinstance(exc, Exception):
                    raise
            finally:
                await self.committer.disconnect()

    def close_draining(self, why: str) -> None:
        log.warning("writer: %s; draining %d fills", why, len(self._queue))
        self._state.close()
        self._queue.release_producers()

    def absorb_cancellation(self) -> None:
        """asyncio's own Task.cancel() (a second Ctrl-C, the event loop shutting down) passes
        through the writer's shield. Take it as a request to close: the queue is drained, the
        batch in flight finished (its token tells whether it was committed), then the task
        ends."""
        self.close_draining("cancelled from outside")
        with contextlib.suppress(RuntimeError):  # not on asyncio: nothing else to undo
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()

    async def _next_batch_or_close(self) -> list[Fill]:
        state = self._state
        try:
            return await self._queue.next_batch(
                lambda: state.closing, lambda: state.flush_target > state.settled
            )
        except anyio.get_cancelled_exc_class():
            self.absorb_cancellation()
            return self._queue.take_batch()

    def _send_next(self) -> Ahead | None:
        """The batch to send behind the one in flight, if one is due now: taken from the queue
        at once, and written (settled) once the one in flight is."""
        flight, state = self._in_flight, self._state
        if flight.ahead is not None or state.failure is not None:
            return None
        # A flush waiting only for the batch in flight does not make the next one due.
        beyond = state.flush_target > state.settled + len(flight)
        if not self._queue.due(closing=state.closing, flush_wanted=beyond):
            return None
        batch = self._queue.take_ahead()
        token = self.committer.new_token()
        flight.ahead = (batch, token)
        return self.committer.ahead(batch, token)

    async def _write(self, batch: list[Fill], token: str | None) -> None:
        flight = self._in_flight
        flight.begin(batch, self._state.settled + 1)
        started = anyio.current_time()

        def committed(indexes: Sequence[int], inserted: int) -> None:
            self._ledger.committed(len(indexes), inserted)
            flight.committed(indexes)

        def refused(index: int, reason: str) -> None:
            rejection = FillRejected(batch[index], reason)
            flight.refused(index, rejection)
            self._rejections.report(rejection)

        attempts = BatchAttempts(self.committer, token, self._send_next)
        await store_isolating(attempts, batch, committed, refused)
        flight.end()
        self._ledger.batch_done(anyio.current_time() - started)
        self._state.settled += len(batch)
        self._waiters.settle(self._state.settled, flight.rejected)

    def _fail(self, exc: BaseException) -> None:
        numbers, uncommitted, unwritten = self._in_flight.give_up()
        unwritten.extend(self._queue.take_all())
        self._ledger.unwritten = len(unwritten)
        failure = WriterFailed(f"the writer stopped: {describe(exc)}", unwritten)
        failure.__cause__ = exc
        self._state.fail(failure)
        log.error("%s", failure)
        self._waiters.fail(failure, numbers, uncommitted, self._in_flight.rejected)
        self._queue.release_producers()
