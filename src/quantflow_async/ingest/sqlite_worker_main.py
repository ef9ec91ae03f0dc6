"""The SQLite write connection of a TradeWriter or an order journal, run as a process of its
own.

Run as a script (standard library only), never imported by the library. A process has its own
GIL: inserting here, SQLite binds and steps rows at full speed however busy the caller's event
loop is, and the caller's loop never waits for the GIL. The protocol on stdin/stdout is
request/reply, each message a 4-byte big-endian length and a `marshal` payload:

    request ("store", statements, rows, token, previous_token, now, prune_before, after)
            one transaction: BEGIN IMMEDIATE, executemany, the batch's token, COMMIT
    reply   ("ok", inserted)
            or ("skipped",) when `after` is true and the store before it did not commit:
            the parent sent this batch while the one before was still in flight, and a batch
            is never committed ahead of an earlier one that failed
    request ("lookup", statements, token)
    reply   ("ok", inserted)  or  ("ok", None) when no batch with that token was committed
    request ("journal", guard, [(statement, rows), ...], after)
            an order journal's batch, one transaction: BEGIN IMMEDIATE, the guard, one
            executemany per statement, COMMIT. `guard` is None or (reads, claims): reads are
            (statement, parameters) giving rows (order id, client order id, venue order id),
            claims map a venue order id to the order that claims it in this batch
    reply   ("ok", None)
            or ("held", rows) when a read found a claimed venue order id held by another
            order: nothing was written, the parent settles the claims and sends it again
            or ("skipped",) as for "store"
    request ("stop",)         the worker closes its connection and exits (no reply)
    any reply may instead be
            ("error", class, name, code, message)   a sqlite3 error; the transaction rolled back
            ("replaced", path)                      the file was removed or replaced

`statements` is (insert, token insert, token prune, token lookup), made by the library.
The parent may write the next request before the reply to the one before it arrives; the pipe
of our stdin is made large enough to hold a batch, so that write never waits for us.

    python sqlite_worker_main.py DATABASE URI(0|1) FILE DEVICE INODE WAL_LIMIT PRAGMA...
"""

from __future__ import annotations

import marshal
import os
import signal
import sqlite3
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")
RESTART_WAIT_MS = 100
RESTART_EVERY_SECONDS = 0.25
REQUEST_PIPE_BYTES = 1024 * 1024
"""Room in the pipe of our stdin: a batch of 5,000 fills is about 400 kB (Linux's default
limit for one pipe is 1 MiB; elsewhere, or past the limit, the pipe keeps its size)."""
PAUSE_AFTER_COMMIT_ENV = "QUANTFLOW_TEST_WORKER_PAUSE_AFTER_COMMIT"
"""Test hook: names a file; the worker that removes it after a COMMIT stops itself (SIGSTOP)
before its reply, so a test can kill it exactly between the two. Once per file."""
PAUSE_AT_START_ENV = "QUANTFLOW_TEST_WORKER_PAUSE_AT_START"
"""Test hook: names a file; the worker that removes it when it starts stops itself before it
says it is ready, so a test can kill a worker while it starts. Once per file."""


class Worker:
    def __init__(
        self,
        connection: sqlite3.Connection,
        path: str,
        opened: tuple[int, int] | None,
        wal_limit: int,
    ) -> None:
        self.connection = connection
        self.path = path
        self.opened = opened
        self.wal_limit = wal_limit
        self.pause_marker = os.environ.get(PAUSE_AFTER_COMMIT_ENV, "")
        self.next_restart = 0.0
        self.last_committed = True  # whether the last store committed

    def store(
        self,
        statements: tuple[str, str, str, str],
        rows: list[Any],
        token: str,
        previous: str | None,
        now: int,
        prune_before: int,
        after: bool,
    ) -> tuple[Any, ...]:
        insert, token_insert, token_prune, _ = statements

        def write(connection: sqlite3.Connection) -> int:
            inserted = connection.executemany(insert, rows).rowcount
            connection.execute(token_insert, (token, inserted, now))
            connection.execute(token_prune, (previous, prune_before))
            return inserted

        return self.in_turn(after, lambda: self.committed(write))

    def journal(
        self,
        guard: tuple[list[tuple[str, list[Any]]], dict[str, int]] | None,
        steps: list[tuple[str, list[Any]]],
        after: bool,
    ) -> tuple[Any, ...]:
        def write(connection: sqlite3.Connection) -> None:
            for statement, rows in steps:
                connection.executemany(statement, rows)

        def guarded() -> tuple[Any, ...]:
            held = self.held_elsewhere(*guard) if guard is not None else []
            return ("held", held) if held else self.committed(write)

        return self.in_turn(after, guarded)

    def in_turn(self, after: bool, commit: Callable[[], tuple[Any, ...]]) -> tuple[Any, ...]:
        """What `commit()` replies; ("skipped",) without calling it if `after` asks it to follow
        the previous request and that one did not commit."""
        if after and not self.last_committed:
            return ("skipped",)
        self.last_committed = False
        reply = commit()
        self.last_committed = reply[0] == "ok"
        return reply

    def held_elsewhere(
        self, reads: list[tuple[str, list[Any]]], claims: dict[str, int]
    ) -> list[tuple[Any, ...]]:
        """Begin the batch's transaction and read who holds the claimed venue order ids:
        every row found if another order holds one (rolled back), else [] (still open)."""
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            rows = [tuple(row) for read in reads for row in connection.execute(*read)]
            if all(claims.get(row[2]) == row[0] for row in rows):
                return []
            connection.execute("ROLLBACK")
            return rows
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def committed(self, write: Callable[[sqlite3.Connection], Any]) -> tuple[Any, ...]:
        """("ok", what `write` returned) once it and COMMIT ran in one transaction (begun
        here unless the journal's guard began it); rolled back on any error, or if the file
        was replaced."""
        connection = self.connection
        if not connection.in_transaction:
            connection.execute("BEGIN IMMEDIATE")
        try:
            result = write(connection)
            # SQLite goes on writing to an unlinked file, and all of it vanishes on close.
            if self.replaced():
                connection.execute("ROLLBACK")
                return ("replaced", self.path)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        if self.pause_marker:
            pause_if_marked(self.pause_marker)
        self.bound_the_wal()
        return ("ok", result)

    def lookup(self, statements: tuple[str, str, str, str], token: str) -> tuple[Any, ...]:
        if self.replaced():
            return ("replaced", self.path)
        row = self.connection.execute(statements[3], (token,)).fetchone()
        return ("ok", None if row is None else int(row[0]))

    def replaced(self) -> bool:
        return bool(self.path) and identity(self.path) != self.opened

    def bound_the_wal(self) -> None:
        # SQLite's own checkpoints run at every commit past 1,000 pages, but a checkpoint can
        # only restart the WAL when no reader still uses an old snapshot; with readers always
        # running that moment never comes and the file grows without end. A RESTART checkpoint
        # waits (busy timeout) for the readers to move to the newest snapshot, which they do
        # within one read, so the next commit writes the WAL from its start again.
        if self.wal_limit <= 0:
            return
        try:
            size = os.stat(self.path + "-wal").st_size
        except OSError:
            return
        if size <= self.wal_limit or time.monotonic() < self.next_restart:
            return
        # Wait a moment for readers, not the whole busy timeout: a reader that holds an old
        # snapshot for long must not hold up every commit. Try again a moment later.
        self.next_restart = time.monotonic() + RESTART_EVERY_SECONDS
        (busy_timeout,) = self.connection.execute("PRAGMA busy_timeout").fetchone()
        self.connection.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
        try:
            self.connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        finally:
            self.connection.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")


def pause_if_marked(marker: str) -> None:
    if not marker:
        return
    try:
        os.remove(marker)
    except OSError:
        return
    os.kill(os.getpid(), signal.SIGSTOP)


def enlarge_request_pipe() -> None:
    try:
        import fcntl  # POSIX only; F_SETPIPE_SZ is Linux only

        fcntl.fcntl(sys.stdin.fileno(), fcntl.F_SETPIPE_SZ, REQUEST_PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # a smaller pipe: the parent's write of the next batch waits for our reads


def identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def handle(worker: Worker, request: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        kind = request[0]
        if kind == "store":
            return worker.store(*request[1:])
        if kind == "journal":
            return worker.journal(*request[1:])
        return worker.lookup(*request[1:])
    except sqlite3.Error as exc:
        return (
            "error",
            type(exc).__name__,
            getattr(exc, "sqlite_errorname", "") or "",
            getattr(exc, "sqlite_errorcode", 0) or 0,
            str(exc),
        )


def read_message(stream: BinaryIO) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    return marshal.loads(stream.read(size))  # noqa: S302 - our parent, over our own pipe


def write_message(stream: BinaryIO, message: Any) -> None:
    payload = marshal.dumps(message)
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def main(arguments: list[str]) -> int:
    # The parent decides when to stop (it drains, then asks us to stop): a Ctrl-C or SIGTERM
    # sent to the whole process group must not abort a batch here half-way. (This script
    # imports nothing of the package, to start fast: worker_signals says the same.)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    try:
        return serve(arguments)
    except BrokenPipeError:
        # The parent is gone (killed while this process started, or before a reply): nobody
        # reads us. Its stderr is ours too, so end without a word: stdout goes to /dev/null,
        # where the interpreter's last flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def serve(arguments: list[str]) -> int:
    """Open the database, say "ok", then answer the parent's requests until it says stop."""
    database, uri, path, device, inode, wal_limit, *pragmas = arguments
    pause_if_marked(os.environ.get(PAUSE_AT_START_ENV, ""))
    opened = (int(device), int(inode)) if device else None
    if path and identity(path) != opened:
        # The file the Database opened is gone or replaced: never create or use another one.
        write_message(sys.stdout.buffer, ("replaced", path))
        return 0
    connection = sqlite3.connect(database, uri=uri == "1", isolation_level=None)
    worker = Worker(connection, path, opened, int(wal_limit))
    for pragma in pragmas:
        connection.execute(pragma)
    if worker.wal_limit > 0:  # after a restart, the file itself shrinks back to the limit
        connection.execute(f"PRAGMA journal_size_limit={worker.wal_limit}")
    enlarge_request_pipe()
    write_message(sys.stdout.buffer, ("ok", os.getpid()))
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    try:
        while (request := read_message(requests)) is not None and request[0] != "stop":
            write_message(replies, handle(worker, request))
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
