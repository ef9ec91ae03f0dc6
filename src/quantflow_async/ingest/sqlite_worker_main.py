"""The SQLite write connection of a TradeWriter, run as a process of its own.

Run as a script (standard library only), never imported by the library. A process has its own
GIL: inserting here, SQLite binds and steps rows at full speed however busy the caller's event
loop is, and the caller's loop never waits for the GIL. The protocol on stdin/stdout is
request/reply, each message a 4-byte big-endian length and a `marshal` payload:

    request  (sql, rows)                   one transaction: BEGIN IMMEDIATE, executemany, COMMIT
    reply    ("ok", inserted)
             ("error", class, name, code, message)   a sqlite3 error; the transaction rolled back
             ("replaced", path)            the file was removed or replaced; rolled back

    python sqlite_worker_main.py DATABASE URI(0|1) FILE PRAGMA...
"""

from __future__ import annotations

import marshal
import os
import signal
import sqlite3
import struct
import sys
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")


def identity(path: str) -> tuple[int, int] | None:
    if not path:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def store(
    connection: sqlite3.Connection, sql: str, rows: list[Any], path: str, opened: object
) -> tuple[Any, ...]:
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            inserted = connection.executemany(sql, rows).rowcount
            # SQLite goes on writing to an unlinked file, and all of it vanishes on close.
            if path and identity(path) != opened:
                connection.execute("ROLLBACK")
                return ("replaced", path)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return ("ok", inserted)
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
    # Ctrl-C reaches the whole process group: the parent decides when to stop (it drains, then
    # closes our stdin), so an interrupt must not abort a batch here half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    database, uri, path, *pragmas = arguments
    connection = sqlite3.connect(database, uri=uri == "1", isolation_level=None)
    for pragma in pragmas:
        connection.execute(pragma)
    opened = identity(path)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    try:
        while (request := read_message(requests)) is not None:
            sql, rows = request
            write_message(replies, store(connection, sql, rows, path, opened))
    except BrokenPipeError:  # the parent is gone; nothing is waiting for a reply
        pass
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
