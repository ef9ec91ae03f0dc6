"""What a driver exception means: a bad row, a passing condition, or a database that is gone.

sqlite3, aiosqlite, asyncpg and SQLAlchemy each wrap errors differently; this module looks
through the wrapping once so that the repositories and the writer decide on one answer.
"""

from __future__ import annotations

import sqlite3
from enum import Enum


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
