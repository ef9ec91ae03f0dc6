"""The writer's side of its SQLite worker process (see sqlite_worker_main.py).

`SqliteWorker.store()` sends one batch of ready rows and awaits the reply without ever
blocking the event loop; errors come back as sqlite3 exceptions that carry SQLite's error
name, so they are classified like errors raised in this process.
"""

from __future__ import annotations

import logging
import marshal
import sqlite3
import sys
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from quantflow_async.errors import StorageUnavailable
from quantflow_async.ingest.sqlite_worker_main import HEADER
from quantflow_async.store.driver_errors import ConnectionLost

log = logging.getLogger(__name__)

MAIN = Path(__file__).with_name("sqlite_worker_main.py")
_LOST = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


class SqliteWorker:
    """One worker process holding one SQLite write connection."""

    def __init__(
        self, database: str, uri: bool, path: Path | None, pragmas: tuple[str, ...]
    ) -> None:
        self._arguments = [database, "1" if uri else "0", str(path or ""), *pragmas]
        self._process: Process | None = None
        self._replies: BufferedByteReceiveStream | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
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
        log.debug("sqlite worker %d started", self._process.pid)

    async def store(self, sql: str, rows: list[Any]) -> int:
        """One transaction in the worker; the number of rows inserted."""
        process, replies = self._process, self._replies
        if process is None or replies is None or process.stdin is None:
            raise ConnectionLost("the SQLite worker is not running")
        payload = marshal.dumps((sql, rows))
        try:
            await process.stdin.send(HEADER.pack(len(payload)) + payload)
            (size,) = HEADER.unpack(await replies.receive_exactly(HEADER.size))
            # Our own child's reply over our own pipe: nothing untrusted is decoded.
            reply = marshal.loads(await replies.receive_exactly(size))  # noqa: S302
        except _LOST as exc:
            raise ConnectionLost(
                f"the SQLite worker {process.pid} is gone ({process.returncode=})"
            ) from exc
        except BaseException:
            # Cancelled mid-request: the reply would pair with the next request. Start over.
            await self.aclose()
            raise
        return _result(reply)

    async def aclose(self) -> None:
        process, self._process, self._replies = self._process, None, None
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                if process.stdin is not None:
                    await process.stdin.aclose()
                with anyio.move_on_after(10):
                    await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                await process.aclose()


def _result(reply: tuple[Any, ...]) -> int:
    kind = reply[0]
    if kind == "ok":
        return int(reply[1])
    if kind == "replaced":
        raise StorageUnavailable(
            f"the database file {reply[1]!r} was removed or replaced while the writer was running"
        )
    _, class_name, name, code, message = reply
    error_class = getattr(sqlite3, class_name, sqlite3.DatabaseError)
    error = error_class(message)
    error.sqlite_errorname = name
    error.sqlite_errorcode = code
    raise error
