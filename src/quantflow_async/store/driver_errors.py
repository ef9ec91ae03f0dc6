"""What a driver exception means, and the one place it becomes the library's error.

sqlite3, aiosqlite, asyncpg and SQLAlchemy each wrap errors differently; this module looks
through the wrapping once so that the repositories and the writer decide on one answer.
The repositories run every database call inside `translated_errors(...)`.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import NoReturn

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from quantflow_async.errors import QuantFlowError, StorageError, StorageUnavailable


class Fault(Enum):
    ROW = "row"
    """The data broke a rule (constraint, foreign key, bad value): retrying cannot help."""
    TRANSIENT = "transient"
    """Busy, locked, a lost connection: the same work may succeed if tried again."""
    FATAL = "fatal"
    """Disk full, read-only, missing file, corruption: nothing will succeed until fixed."""


_SQLITE_ROW = {"SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG", "SQLITE_RANGE"}
_SQLITE_TRANSIENT = {"SQLITE_BUSY", "SQLITE_LOCKED"}
_PG_TRANSIENT_STATES = {"40001", "40P01", "53300", "55P03", "57P01", "57P02", "57P03", "57014"}
# No connection can be opened: the server refuses it, is starting or stopping, or the database
# named in the URL does not exist.
_PG_UNREACHABLE_STATES = {"08001", "08004", "3D000", "57P03"}
_PG_NO_SUCH_DATABASE = "3D000"


class ConnectionLost(ConnectionError):
    """The connection to the database (or to the SQLite worker process) broke."""


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return chain


def classify(exc: BaseException) -> Fault:
    """The kind of fault behind `exc`; unknown errors count as FATAL, never silently retried."""
    for cause in _causes(exc):
        if isinstance(cause, sqlite3.Error):
            return _classify_sqlite(cause)
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            return _classify_sqlstate(sqlstate)
        if _is_pg_connection_loss(cause) or _is_closed_sqlite_connection(cause):
            return Fault.TRANSIENT
    return Fault.FATAL


def _is_closed_sqlite_connection(exc: BaseException) -> bool:
    # aiosqlite raises ValueError once its connection is closed; a new connection fixes it.
    return isinstance(exc, ValueError) and str(exc) in ("Connection closed", "no active connection")


def _classify_sqlite(exc: sqlite3.Error) -> Fault:
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
        return Fault.TRANSIENT
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = "_".join(name.split("_")[:2])  # SQLITE_CONSTRAINT_FOREIGNKEY -> SQLITE_CONSTRAINT
    if isinstance(exc, sqlite3.IntegrityError) or primary in _SQLITE_ROW:
        return Fault.ROW
    if primary in _SQLITE_TRANSIENT:
        return Fault.TRANSIENT
    return Fault.FATAL


def _classify_sqlstate(sqlstate: str) -> Fault:
    if sqlstate[:2] in ("22", "23"):
        return Fault.ROW
    if sqlstate[:2] == "08" or sqlstate in _PG_TRANSIENT_STATES:
        return Fault.TRANSIENT
    return Fault.FATAL


def _is_pg_connection_loss(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    module = type(exc).__module__
    if module.startswith("asyncpg"):
        # InterfaceError and ConnectionDoesNotExistError: the connection is closed or broken.
        return type(exc).__name__ in {
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "ConnectionFailureError",
            "InternalClientError",
        }
    return False


def describe(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's SQL echo and background link."""
    for cause in reversed(_causes(exc)):
        text = str(cause).strip()
        if text:
            return text.splitlines()[0]
    return type(exc).__name__


def storage_error(exc: BaseException, action: str) -> NoReturn:
    """Raise the library's error for a driver failure that is not the caller's input."""
    raise _storage_error(exc, action) from exc


@contextmanager
def translated_errors(
    action: str, *, row_error: Callable[[BaseException], QuantFlowError] | None = None
) -> Iterator[None]:
    """Run a database call, turning any driver error into the library's own, cause chained.

    `action` says what was being done ("reading strategy 7"). `row_error`, when given, makes
    the error for data that broke a rule (a unique name taken, a foreign key): only the caller
    knows whether that means Conflict or NotFound. Our own errors pass through unchanged.
    """
    try:
        yield
    except QuantFlowError:
        raise
    except Exception as exc:
        if not is_driver_error(exc):
            raise
        if row_error is not None and classify(exc) is Fault.ROW:
            raise row_error(exc) from exc
        storage_error(exc, action)


def raise_masked_cancellation(exc: BaseException) -> None:
    """Raise the cancellation `exc` was raised in place of, if the running task is being
    cancelled. A statement cancelled in SQLAlchemy's sync code (a migration, run in a
    greenlet) leaves its transaction to roll back, and the next statement fails with
    PendingRollbackError instead: the caller cancelled, and must see its cancellation.

    Not an older one: a task nobody is cancelling raises what it raised, and a TimeoutError
    in the chain (asyncpg's connect timeout is one, made from a cancellation that
    `asyncio.timeout` absorbed) ends the search.
    """
    task = asyncio.current_task()
    if task is None or not task.cancelling():
        return
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or isinstance(current, TimeoutError):
            continue
        if isinstance(current, asyncio.CancelledError):
            raise current
        seen.add(id(current))
        pending += [current.__context__, current.__cause__]


def is_driver_error(exc: BaseException) -> bool:
    """True for what a database call raises besides our own errors and programming mistakes.

    SQLAlchemy wraps the drivers' errors, but the raw aiosqlite and asyncpg connections raise
    their own, and a refused or dropped network connection surfaces as a plain OSError.
    """
    return (
        isinstance(exc, SQLAlchemyError | OSError | sqlite3.Error)
        or type(exc).__module__.startswith("asyncpg")
        or _is_closed_sqlite_connection(exc)
    )


def _storage_error(exc: BaseException, action: str) -> StorageError:
    message = f"{action} failed: {describe(exc)}"
    if _sqlstate(exc) == _PG_NO_SUCH_DATABASE:
        return StorageUnavailable(
            f"{action} failed: the server has no such database: {describe(exc)}; create it "
            "(createdb) or name another in the URL"
        )
    if _is_unreachable(exc):
        return StorageUnavailable(
            f"{action} failed: the database server cannot be reached: {describe(exc)}"
        )
    if _is_missing_table(exc):
        return StorageError(
            f"{message}; the schema is missing: run `quantflow migrate` or `await db.migrate()`"
        )
    if classify(exc) is Fault.FATAL and not _is_programming_error(exc):
        return StorageUnavailable(message)
    return StorageError(message)


def _sqlstate(exc: BaseException) -> str | None:
    """The first SQLSTATE in `exc`'s chain of causes, if any."""
    for cause in _causes(exc):
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            return sqlstate
    return None


def _is_unreachable(exc: BaseException) -> bool:
    """True when no connection could be opened at all, as opposed to one that broke."""
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError | socket.gaierror):
            return True
        # asyncio reports every address it tried in one OSError without an errno.
        if isinstance(cause, OSError) and str(cause).startswith("Multiple exceptions"):
            return "Connect call failed" in str(cause)
        if getattr(cause, "sqlstate", None) in _PG_UNREACHABLE_STATES:
            return True
    return False


def _is_missing_table(exc: BaseException) -> bool:
    text = describe(exc)
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _is_programming_error(exc: BaseException) -> bool:
    return isinstance(exc, SQLAlchemyError) and not isinstance(exc, DBAPIError)
