"""Where a writer's batches go on a SQLite file: a worker process holding the one write
connection (see sqlite_worker_main.py for why, and for the protocol).

Each request is sent and its reply awaited without blocking the event loop; errors come back
as sqlite3 exceptions that carry SQLite's error name, so they are classified like errors raised
in this process. A request cut short (a commit past its time limit) kills the worker: its
reply could no longer be paired with a request.
"""

from __future__ import annotations

import logging
import marshal
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from quantflow_async.errors import StorageUnavailable
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
            await self._receive()  # the worker says it is ready, or why it is not
        except _LOST as exc:  # killed or unable to start: a passing fault, like a lost reply
            await self.abandon()
            raise ConnectionLost(f"the SQLite worker did not start: {exc!r}") from exc
        log.debug("sqlite worker %d started", self._process.pid)

    async def store(self, fills: Sequence[Fill], token: str, previous: str | None) -> int:
        now = datetime.now(UTC)
        statements = (
            SQLITE_INSERT.format(now=epoch_micros(now)),
            SQLITE_RECORD_BATCH,
            SQLITE_FORGET_BATCHES,
            SQLITE_FIND_BATCH,
        )
        rows = sqlite_rows(fills)
        prune_before = epoch_micros(now - TOKEN_LIFETIME)
        request = ("store", statements, rows, token, previous, epoch_micros(now), prune_before)
        return int(await self._request(request))

    async def lookup(self, token: str) -> int | None:
        statements = ("", SQLITE_RECORD_BATCH, SQLITE_FORGET_BATCHES, SQLITE_FIND_BATCH)
        found = await self._request(("lookup", statements, token))
        return None if found is None else int(found)

    async def _request(self, request: tuple[Any, ...]) -> Any:
        process = self._process
        if process is None or process.stdin is None:
            raise ConnectionLost("the SQLite worker is not running")
        payload = marshal.dumps(request)
        try:
            await process.stdin.send(HEADER.pack(len(payload)) + payload)
            return await self._receive()
        except _LOST as exc:
            raise ConnectionLost(
                f"the SQLite worker {process.pid} is gone ({process.returncode=})"
            ) from exc
        except BaseException:
            # Cut short (a time limit, a cancellation): the reply would pair with the next
            # request, and the worker may be stuck. It goes; the writer asks a new one.
            await self.abandon()
            raise

    async def _receive(self) -> Any:
        replies = self._replies
        if replies is None:
            raise ConnectionLost("the SQLite worker is not running")
        (size,) = HEADER.unpack(await replies.receive_exactly(HEADER.size))
        # Our own child's reply over our own pipe: nothing untrusted is decoded.
        return _result(marshal.loads(await replies.receive_exactly(size)))  # noqa: S302

    async def abandon(self) -> None:
        """Kill the worker at once (it may be stopped or stuck); an open transaction is lost."""
        process, self._process, self._replies = self._process, None, None
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
