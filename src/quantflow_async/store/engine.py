"""Engine creation: per-connection SQLite pragmas, explicit transaction starts, dialect facts.

Every SQLite connection gets WAL, the chosen `synchronous` level, enforced foreign keys and a
busy timeout. SQLAlchemy, not sqlite3, emits BEGIN, so that write transactions can take the
write lock up front (BEGIN IMMEDIATE) and never fail half-way with "database is locked".
The file is created (owner-only) when the engine is made; every connection opens it read-write
(`mode=rw`), so a file removed later is an error and never made again by a reader.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from quantflow_async.config import Settings, redact_url
from quantflow_async.errors import InvalidValue, StorageUnavailable
from quantflow_async.store import aiosqlite_connection

log = logging.getLogger(__name__)

WRITE_OPTION = "quantflow_write"
SQLITE_MODES = ("ro", "rw", "rwc", "memory")
"""The values of a SQLite URI's `mode` (https://www.sqlite.org/uri.html)."""


def create_engine(settings: Settings) -> AsyncEngine:
    """An AsyncEngine for `settings.database_url`, configured for this library's rules."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, settings)
    engine = create_async_engine(url, hide_parameters=True, **_pool_options(settings))
    log.info("opened %s", redact_url(settings.database_url))
    return engine


def _pool_options(settings: Settings) -> dict[str, Any]:
    return {
        "echo": settings.echo,
        "pool_size": settings.pool_size,
        "max_overflow": settings.pool_max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": -1 if settings.pool_recycle is None else settings.pool_recycle,
        "pool_pre_ping": True,
    }


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL (plain or `file:` URI), or None for an in-memory database."""
    database = url.database or ""
    if is_sqlite_uri(url):
        if _sqlite_mode(url) == "memory":
            return None
        if database.startswith("file:"):
            location = database.removeprefix("file:").partition("?")[0]
            database = urllib.parse.unquote(location)  # SQLite decodes %HH in a URI's path
    if not database or database == ":memory:":
        return None
    return Path(database)


def is_sqlite_uri(url: URL) -> bool:
    return str(url.query.get("uri", "")).lower() in ("true", "1")


@dataclass(frozen=True, slots=True)
class PinnedFile:
    """The SQLite file a Database opened: its absolute path, and its identity once it exists.

    Fixed when the engine is made, so a later `os.chdir()` or a file put in its place never
    sends a connection (the writer's worker included) to another file.
    """

    path: Path
    identity: tuple[int, int] | None

    def check(self) -> None:
        """Raise StorageUnavailable if the file at `path` is no longer the one opened."""
        if self.identity is not None and file_identity(self.path) != self.identity:
            raise StorageUnavailable(
                f"the database file {str(self.path)!r} was removed or replaced "
                "after the Database opened it"
            )


_PINNED: WeakKeyDictionary[Engine, PinnedFile] = WeakKeyDictionary()


def pinned_file(engine: AsyncEngine) -> PinnedFile:
    """The file a SQLite engine of this module was made for."""
    return _PINNED[engine.sync_engine]


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def _absolute(url: URL, path: Path) -> tuple[URL, Path]:
    absolute = Path(os.path.abspath(path))
    if not is_sqlite_uri(url):
        return url.set(database=str(absolute)), absolute
    database = url.database or ""
    # Only a `file:` URI has a query of its own; a plain path's "?" is part of its name.
    query = database.partition("?")[2] if database.startswith("file:") else ""
    location = urllib.parse.quote(str(absolute))
    return url.set(database=f"file:{location}" + (f"?{query}" if query else "")), absolute


def _create_sqlite_engine(url: URL, settings: Settings) -> AsyncEngine:
    read_only = _sqlite_mode(url) == "ro"
    if not is_sqlite_uri(url) and "mode" in url.query:
        # SQLite reads `mode` only in a URI: sqlite3 would never see it (SQLAlchemy drops it
        # with a warning), and a file asked for with mode=ro would be opened for writing.
        location = urllib.parse.quote(url.database or "")
        url = url.set(database=f"file:{location}").update_query_dict({"uri": "true"})
    path = sqlite_file(url)
    if path is None:
        raise InvalidValue(
            "database_url",
            "an in-memory SQLite database cannot be shared by the writer and the readers; "
            "use a file, e.g. sqlite+aiosqlite:///./dev.sqlite3 (or one in a temporary folder)",
        )
    url, path = _absolute(url, path)
    if not settings.create_sqlite_file or read_only:
        _require_file(path, read_only=read_only)
    else:
        _create_private_file(path)
    pinned = PinnedFile(path, file_identity(path))
    engine = create_async_engine(
        url,
        hide_parameters=True,
        connect_args={
            "timeout": settings.busy_timeout_ms / 1000,
            "factory": RollingBackConnection,
        },
        **_pool_options(settings),
    )
    pragmas = sqlite_pragmas(settings)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_do_connect(
        dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        # The file exists by now (made or required above). sqlite3 would create a missing one,
        # so a removed file is reported before a connection is tried, and opened read-write,
        # never in create mode, so a removal in between is an error, not a new empty file.
        pinned.check()
        cargs[0] = _never_creating(cargs[0], uri=bool(cparams.get("uri")))
        cparams["uri"] = True
        cparams["async_creator_fn"] = aiosqlite_connection.connect

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        pinned.check()
        # SQLAlchemy emits BEGIN itself (see _on_begin); sqlite3 must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    _PINNED[engine.sync_engine] = pinned
    log.info("opened %s (synchronous=%s)", redact_url(settings.database_url), settings.synchronous)
    return engine


class RollingBackConnection(sqlite3.Connection):
    """A sqlite3 connection that ends its transaction when it is closed.

    Since Python 3.11, closing a connection leaves a statement that a live cursor still holds
    unfinalized, and SQLite then keeps the connection open as a "zombie" until that cursor is
    collected, with its transaction and its write lock. A connection dropped while a statement
    runs (a task cancelled mid-query: SQLAlchemy invalidates and closes it) would so lock out
    every other writer of the file, this process's own included, for as long as anything,
    such as the cancellation's traceback, keeps the cursor alive. ROLLBACK aborts such
    statements, so the zombie holds nothing.
    """

    def close(self) -> None:
        try:
            with contextlib.suppress(sqlite3.Error):  # closed already: closing is all that is left
                if self.in_transaction:
                    self.rollback()
        finally:
            super().close()


def _never_creating(database: str, *, uri: bool) -> str:
    """The SQLite URI that opens `database` (a path, or a `file:` URI when `uri`) without ever
    creating it: `mode=rw`, or `mode=ro` when the URI asks for that."""
    if not uri:
        return f"file:{urllib.parse.quote(database)}?mode=rw"
    location, _, query = database.partition("?")
    options = [option for option in query.split("&") if option]
    mode = "mode=ro" if "mode=ro" in options else "mode=rw"
    kept = [option for option in options if not option.startswith("mode=")]
    return f"{location}?{'&'.join([*kept, mode])}"


def sqlite_pragmas(settings: Settings) -> tuple[str, ...]:
    """The statements every SQLite connection runs when it opens, the writer's included."""
    return (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={settings.synchronous}",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={int(settings.busy_timeout_ms)}",
        *settings.sqlite_pragmas,
    )


def _require_file(path: Path, *, read_only: bool) -> None:
    """Refuse to open a database file that is not there, rather than let sqlite3 create it."""
    if path.is_file():
        return
    if read_only:
        raise StorageUnavailable(
            f"the SQLite database {str(path)!r} does not exist, and a URL with mode=ro "
            "cannot create it; migrate it with a URL without mode=ro"
        )
    raise StorageUnavailable(
        f"the SQLite database {str(path)!r} does not exist; "
        "run `quantflow migrate` (or `await db.migrate()`) to create it"
    )


def _sqlite_mode(url: URL) -> str | None:
    """The `mode` a SQLite URL gives (in its query, or in the query of its `file:` URI), if
    any; InvalidValue unless it is one of SQLite's, given once."""
    _, _, uri_query = (url.database or "").partition("?")
    modes = [value for name, value in urllib.parse.parse_qsl(uri_query) if name == "mode"]
    given = url.query.get("mode", ())
    modes += [given] if isinstance(given, str) else list(given)
    if not modes:
        return None
    if len(modes) > 1 or modes[0] not in SQLITE_MODES:
        raise InvalidValue(
            "database_url",
            f"give SQLite's mode once, one of {', '.join(SQLITE_MODES)}; got "
            + "&".join(f"mode={mode}" for mode in modes),
        )
    return modes[0]


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only; leave an existing file alone."""
    if path.exists():
        return
    if not path.parent.is_dir():
        raise StorageUnavailable(
            f"cannot create SQLite database {str(path)!r}: "
            f"directory {str(path.parent)!r} does not exist"
        )
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StorageUnavailable(f"cannot create SQLite database {str(path)!r}: {exc}") from exc
    os.close(fd)


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that holds SQLite's write lock from its first statement."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(**{WRITE_OPTION: True})
        async with connection.begin():
            yield connection


@asynccontextmanager
async def read_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a read transaction: one consistent snapshot for all its queries."""
    async with engine.connect() as connection, connection.begin():
        yield connection
