"""Committing one batch for a TradeWriter: the write connection, a token per attempt's
transaction, passing faults retried (retry.py), every commit bounded by `commit_timeout`, and a
retry whose outcome is unknown asking the token before it writes again."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.config import WriterOptions
from quantflow_async.errors import StorageError
from quantflow_async.ingest.ahead import NextBatch
from quantflow_async.ingest.batch_store import BatchStore
from quantflow_async.ingest.isolation import RowsRefused
from quantflow_async.ingest.retry import Backoff
from quantflow_async.records import Fill
from quantflow_async.store.driver_errors import Fault, classify, describe
from quantflow_async.store.references import broken_references

log = logging.getLogger(__name__)


class Committer:
    """One writer's connection and tokens. `on_cancelled` is called when asyncio's own
    Task.cancel() reaches the writer's task here, through its shield (see TradeWriter)."""

    def __init__(
        self,
        engine: AsyncEngine,
        backend: BatchStore,
        options: WriterOptions,
        on_cancelled: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._backend = backend
        self._options = options
        self._on_cancelled = on_cancelled
        self._connected = False
        self._writer_id = uuid.uuid4().hex
        self._batch_number = 0
        self._last_token: str | None = None

    @property
    def pid(self) -> int | None:
        return self._backend.pid

    def new_token(self) -> str:
        self._batch_number += 1
        return f"{self._writer_id}:{self._batch_number}"

    def ahead(self, fills: Sequence[Fill], token: str) -> tuple[Sequence[Fill], str, str | None]:
        """`fills` to send behind the batch in flight. Its transaction deletes the token of the
        last batch whose fate is known, never the one in flight, which may yet be asked."""
        return fills, token, self._last_token

    async def store(
        self, fills: Sequence[Fill], token: str | None = None, next_batch: NextBatch | None = None
    ) -> int:
        """One transaction with a token of its own, retried while the fault is a passing one;
        a retry first asks whether the token (so the batch) was committed after all.

        `token` is given when the batch was sent ahead already; `next_batch` is offered to the
        store with the first attempt.
        """
        token = token or self.new_token()
        backoff = Backoff(self._options)
        outcome_unknown = False
        while True:
            try:
                inserted = await self._attempt(fills, token, outcome_unknown, next_batch)
            except anyio.get_cancelled_exc_class():
                # The attempt was cut short anywhere, its transaction perhaps still open:
                # drop the connection, and ask the token on a new one.
                self._on_cancelled()
                outcome_unknown = True
                await self.disconnect(abandon=True)
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
                    self._options.retry_attempts,
                )
            else:
                self._last_token = token
                return inserted
            finally:
                next_batch = None  # offered once: a retry goes alone
            await self.disconnect(abandon=True)
            await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            self._on_cancelled()  # the pause is over; the retry goes on

    async def _attempt(
        self, fills: Sequence[Fill], token: str, ask_first: bool, next_batch: NextBatch | None
    ) -> int:
        with anyio.move_on_after(self._options.commit_timeout):
            if not self._connected:
                await self.connect()
            if ask_first:
                found = await self._backend.lookup(token)
                if found is not None:
                    log.info("writer: a batch whose reply was lost had been committed")
                    return found
            return await self._backend.store(fills, token, self._last_token, next_batch)
        await self.disconnect(abandon=True)
        raise TimeoutError(
            f"a commit took longer than commit_timeout={self._options.commit_timeout}s; "
            "its connection was dropped"
        )

    async def refusals(self, fills: Sequence[Fill]) -> dict[int, str]:
        """The fills the database can name as bad in one query (a missing strategy or
        backtest), by index; {} when it cannot tell."""
        try:
            found = await broken_references(self._engine, fills)
        except anyio.get_cancelled_exc_class():
            self._on_cancelled()
            return {}
        except Exception as exc:  # the bisection still finds every bad fill, only slower
            log.debug("writer: could not look for missing references: %s", describe(exc))
            return {}
        return {index: str(error) for index, error in found.items()}

    async def connect(self) -> None:
        await self._backend.open()
        self._connected = True

    async def disconnect(self, *, abandon: bool = False) -> None:
        # Always ask the backend to let go: an open() that failed half-way may hold a connection.
        self._connected = False
        try:
            with anyio.CancelScope(shield=True):
                if abandon:
                    await self._backend.abandon()
                else:
                    await self._backend.aclose()
        except anyio.get_cancelled_exc_class():
            self._on_cancelled()
            await self._backend.abandon()  # cut short: let go at once
        except Exception as exc:  # the connection is already broken; nothing to save
            log.debug("writer: closing a broken connection: %s", describe(exc))


class BatchAttempts:
    """One batch's stores as batch isolation sees them: the first attempt of the whole batch
    carries its token (if it was sent ahead) and may send the next batch behind it."""

    def __init__(self, committer: Committer, token: str | None, next_batch: NextBatch) -> None:
        self._committer = committer
        self._token = token
        self._next_batch: NextBatch | None = next_batch

    async def store(self, fills: Sequence[Fill]) -> int:
        token, next_batch = self._token, self._next_batch
        self._token = self._next_batch = None
        return await self._committer.store(fills, token, next_batch)

    async def find_refused(self, fills: Sequence[Fill]) -> dict[int, str]:
        return await self._committer.refusals(fills)
