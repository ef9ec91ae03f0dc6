"""Where a writer's batches go on a SQLite file: a worker process holding the one write
connection (see sqlite_worker_main.py for why, and for the protocol).

Each request is sent and its reply awaited without blocking the event loop; errors come back
as sqlite3 exceptions that carry SQLite's error name, so they are classified like errors raised
in this process. A request cut short (a commit past its time limit) kills the worker: its
reply could no longer be paired with a request.

A store may send the next batch right behind the one in flight (see ahead.py), so the worker
goes on to it at once. The worker runs that batch only if the one before it committed;
otherwise it answers "skipped" and the batch is sent again when its turn comes. A batch sent
ahead to a worker that is then lost may have been committed: its token is asked first.
"""

from __future__ import annotations

import logging
import marshal
import sqlite3
import sys
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import PIPE
from typing import Any, NoReturn

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from quantflow_async.errors import StorageUnavailable
from quantflow_async.ingest.ahead import NextBatch
from quantflow_async.ingest.sqlite_worker_main import HEADER
from quantflow_async.records import Fill, sqlite_rows
from quantflow_async.store.driver_errors import ConnectionLost
from quantflow_async.store.engine import PinnedFile
from quantflow_async.store.trade_insert import (
    SQLITE_FIND_BATCH,
    SQLITE_FORGET_BATCHES,
    SQLITE_INSERT,
    SQLITE_RECORD_BATCH,
)
from quantflow_async.validation import epoch_micros

log = logging.getLogger(__name__)

MAIN = Path(__file__).with_name("sqlite_worker_main.py")
TOKEN_LIFETIME = timedelta(days=1)
_LOOKUP = ""  # what the reply to a lookup answers (a store's reply answers its token)
JOURNAL_KEY_PREFIX = "\0journal:"
"""What the reply to an order journal's batch answers: this prefix and the writer's batch
number (a store's reply answers its token, which never starts with NUL)."""
JournalGuard = tuple[list[tuple[str, list[Any]]], dict[str, int]]
"""The reads of who holds the venue order ids a journal batch claims, and the claims (venue
order id: the claiming order's id): the worker writes the batch only if no other order does."""
_LOST = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


class SqliteWorkerStore:
    """One worker process holding one SQLite write connection to the pinned file."""

    def __init__(
        self,
        database: str,
        uri: bool,
        pinned: PinnedFile,
        pragmas: tuple[str, ...],
        wal_limit_bytes: int,
        stop_grace: float,
    ) -> None:
        device, inode = pinned.identity or ("", "")
        self._arguments = [
            database,
            "1" if uri else "0",
            str(pinned.path),
            str(device),
            str(inode),
            str(wal_limit_bytes),
            *pragmas,
        ]
        self._pinned = pinned
        self._stop_grace = stop_grace
        self._process: Process | None = None
        self._replies: BufferedByteReceiveStream | None = None
        self._awaiting: deque[str] = deque()  # what each reply still to come answers, in order
        self._early: dict[str, tuple[Any, ...]] = {}  # replies read before they were asked for
        self._unsure: set[str] = set()  # batches sent to a worker lost before it answered

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def open(self) -> None:
        try:
            # -I: the worker needs the standard library only, and none of the caller's paths.
            self._process = await anyio.open_process(
                [sys.executable, "-I", str(MAIN), *self._arguments],
                stdin=PIPE,
                stdout=PIPE,
                stderr=None,
            )
            if self._process.stdout is None:  # pragma: no cover - PIPE always gives a stream
                raise ConnectionLost("the SQLite worker has no stdout")
            self._replies = BufferedByteReceiveStream(self._process.stdout)
            _result(await self._receive())  # the worker says it is ready, or why it is not
        except _LOST as exc:  # killed or unable to start: a passing fault, like a lost reply
            await self.abandon()
            raise ConnectionLost(f"the SQLite worker did not start: {exc!r}") from exc
        log.debug("sqlite worker %d started", self._process.pid)

    async def store(
        self,
        fills: Sequence[Fill],
        token: str,
        previous: str | None,
        next_batch: NextBatch | None = None,
    ) -> int:
        if token in self._unsure:
            found = await self.lookup(token)
            if found is not None:
                return found
        reply = self._early.pop(token, None)
        if reply is None:
            if token not in self._awaiting:
                await self._send(_store_request(fills, token, previous, after=False), token)
            # Right behind this batch, the worker goes on to the next without a pause.
            ahead = next_batch() if next_batch and self._awaiting[-1] == token else None
            if ahead is not None:
                await self._send(_store_request(*ahead, after=True), ahead[1])
                log.debug("sqlite worker: batch %s sent behind batch %s", ahead[1], token)
            reply = await self._reply_to(token)
        if reply[0] == "skipped":
            # The batch before it failed, and the worker left this one alone: its turn now.
            log.debug("sqlite worker: batch %s, sent behind one that failed, sent again", token)
            return await self.store(fills, token, previous)
        return int(_result(reply))

    async def lookup(self, token: str) -> int | None:
        self._unsure.discard(token)
        statements = ("", SQLITE_RECORD_BATCH, SQLITE_FORGET_BATCHES, SQLITE_FIND_BATCH)
        await self._send(("lookup", statements, token), _LOOKUP)
        found = _result(await self._reply_to(_LOOKUP))
        return None if found is None else int(found)

    async def send_journal(
        self,
        key: str,
        guard: JournalGuard | None,
        steps: Sequence[tuple[str, Sequence[Any]]],
        *,
        after: bool,
    ) -> None:
        """Send an order journal's batch as one transaction (see sqlite_worker_main.py,
        "journal"); `journal_reply(key)` reads how it went. With `after`, the worker leaves it
        alone if the batch sent before it did not commit."""
        rows = [(sql, list(batch)) for sql, batch in steps]
        await self._send(("journal", guard, rows, after), key)

    async def journal_reply(self, key: str) -> tuple[Any, ...]:
        """The reply to the journal batch sent as `key`: ("ok", None), ("held", rows) or
        ("skipped",); any other reply is raised as its error."""
        reply = self._early.pop(key, None)
        if reply is None:
            reply = await self._reply_to(key)
        if reply[0] not in ("held", "skipped"):
            _result(reply)
        return reply

    async def _send(self, request: tuple[Any, ...], answers: str) -> None:
        process = self._process
        if process is None or process.stdin is None:
            raise ConnectionLost("the SQLite worker is not running")
        payload = marshal.dumps(request)
        self._awaiting.append(answers)  # from here, a lost worker may have run it
        try:
            await process.stdin.send(HEADER.pack(len(payload)) + payload)
        except BaseException as exc:
            await self._cut_short(process, exc)

    async def _reply_to(self, answers: str) -> tuple[Any, ...]:
        """Read replies in order up to the one that answers `answers`; keep the ones before it
        (the reply to a batch sent ahead, read while a later request waits)."""
        process = self._process
        if process is None:
            raise ConnectionLost("the SQLite worker is not running")
        while True:
            try:
                reply: tuple[Any, ...] = await self._receive()
            except BaseException as exc:
                await self._cut_short(process, exc)
            answered = self._awaiting.popleft()
            if answered == answers:
                return reply
            self._early[answered] = reply

    async def _cut_short(self, process: Process, exc: BaseException) -> NoReturn:
        if isinstance(exc, _LOST):
            raise ConnectionLost(
                f"the SQLite worker {process.pid} is gone ({process.returncode=})"
            ) from exc
        # Cut short (a time limit, a cancellation): a reply would pair with the wrong request,
        # and the worker may be stuck. It goes; the writer asks a new one.
        await self.abandon()
        raise exc

    async def _receive(self) -> Any:
        replies = self._replies
        if replies is None:
            raise ConnectionLost("the SQLite worker is not running")
        (size,) = HEADER.unpack(await replies.receive_exactly(HEADER.size))
        # Our own child's reply over our own pipe: nothing untrusted is decoded.
        return marshal.loads(await replies.receive_exactly(size))  # noqa: S302

    async def abandon(self) -> None:
        """Kill the worker at once (it may be stopped or stuck); an open transaction is lost."""
        process, self._process, self._replies = self._process, None, None
        self._unsure.update(
            a for a in self._awaiting if a != _LOOKUP and not a.startswith(JOURNAL_KEY_PREFIX)
        )
        self._awaiting.clear()
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await process.aclose()

    async def aclose(self) -> None:
        """Ask the worker to stop and wait for it; kill it if it does not."""
        process = self._process
        if process is None:
            return
        if self._awaiting:  # a batch sent ahead that nobody will wait for: it must not run now
            await self.abandon()
            return
        with anyio.CancelScope(shield=True):
            # An explicit stop, not end-of-file: a process forked since holds our pipe's
            # write end too, and the worker would never see the end of its input.
            stop = marshal.dumps(("stop",))
            try:
                if process.stdin is not None:
                    await process.stdin.send(HEADER.pack(len(stop)) + stop)
                    await process.stdin.aclose()
            except _LOST:
                pass
            with anyio.move_on_after(self._stop_grace):
                await process.wait()
            if process.returncode is None:
                log.warning("sqlite worker %d did not stop; killing it", process.pid)
        await self.abandon()


def _store_request(
    fills: Sequence[Fill], token: str, previous: str | None, *, after: bool
) -> tuple[Any, ...]:
    now = datetime.now(UTC)
    statements = (
        SQLITE_INSERT.format(now=epoch_micros(now)),
        SQLITE_RECORD_BATCH,
        SQLITE_FORGET_BATCHES,
        SQLITE_FIND_BATCH,
    )
    rows = sqlite_rows(fills)
    prune_before = epoch_micros(now - TOKEN_LIFETIME)
    return ("store", statements, rows, token, previous, epoch_micros(now), prune_before, after)


def _result(reply: tuple[Any, ...]) -> Any:
    kind = reply[0]
    if kind == "ok":
        return reply[1]
    if kind == "replaced":
        raise StorageUnavailable(
            f"the database file {reply[1]!r} was removed or replaced after the Database opened it"
        )
    _, class_name, name, code, message = reply
    error_class = getattr(sqlite3, class_name, sqlite3.DatabaseError)
    error = error_class(message)
    error.sqlite_errorname = name
    error.sqlite_errorcode = code
    raise error
