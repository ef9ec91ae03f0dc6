"""Configuration: one immutable `Settings` object, read from the environment in one place.

Nothing in the library reads the environment except `Settings.from_env()`. Every mistake in a
setting is an `InvalidValue` naming the setting (and the variable, when it came from one),
raised when the Settings is made: before any engine, connection or file exists.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote

from quantflow_async.errors import InvalidValue
from quantflow_async.option_checks import check_amount, check_bool, check_int

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./dev.sqlite3"
DATABASE_URL_ENV = "QUANTFLOW_DATABASE_URL"
SYNCHRONOUS_ENV = "QUANTFLOW_SQLITE_SYNCHRONOUS"

Synchronous = Literal["NORMAL", "FULL"]

# The one driver the library runs on for each backend.
ASYNC_DRIVERS: Final = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_BACKEND_ALIASES: Final = {"postgres": "postgresql", "sqlite3": "sqlite"}
# SQLite takes busy_timeout as a C int; 2**31 and above silently become 0 (no waiting at all).
MAX_BUSY_TIMEOUT_MS: Final = 2**31 - 1
# Query parameters that carry a secret (asyncpg takes ?password=...).
_SECRET_QUERY_WORDS: Final = ("password", "passwd", "pwd", "secret", "token")
_MASK: Final = "***"


@dataclass(frozen=True, slots=True)
class WriterOptions:
    """Default knobs of `Database.writer()`; each can be overridden per writer.

    `commit_timeout` bounds one transaction: past it the writer abandons the connection (its
    SQLite worker is killed), learns from the batch's token whether it was committed, and
    retries it if not. `max_rejected` is how many refusals `writer.rejected` keeps (the most
    recent); `stats().rejected` counts them all.
    """

    batch_size: int = 2000
    max_latency: float = 0.02
    max_queue: int = 50_000
    retry_attempts: int = 8
    retry_initial_delay: float = 0.05
    retry_max_delay: float = 2.0
    commit_timeout: float = 60.0
    max_rejected: int = 10_000

    def __post_init__(self) -> None:
        check_int("max_rejected", self.max_rejected, minimum=0)
        check_amount("commit_timeout", self.commit_timeout, "seconds")
        if self.commit_timeout == 0:
            raise InvalidValue("commit_timeout", "must be more than 0 seconds, got 0")
        check_int("batch_size", self.batch_size, minimum=1)
        check_amount("max_latency", self.max_latency, "seconds")
        check_int("max_queue", self.max_queue, minimum=1)
        check_int("retry_attempts", self.retry_attempts, minimum=0)
        check_amount("retry_initial_delay", self.retry_initial_delay, "seconds")
        check_amount("retry_max_delay", self.retry_max_delay, "seconds")
        if self.retry_max_delay < self.retry_initial_delay:
            raise InvalidValue(
                "retry_max_delay",
                f"must be >= retry_initial_delay ({self.retry_initial_delay}), "
                f"got {self.retry_max_delay}",
            )


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    """Everything a `Database` needs to know, with the defaults in one place.

    `database_url` is a `sqlite+aiosqlite://` or `postgresql+asyncpg://` URL.
    `synchronous` applies to SQLite only: NORMAL survives a crash of the process,
    FULL also survives a power loss or an OS crash, at the cost of an fsync per commit.
    `sqlite_pragmas` are extra statements run on every SQLite connection after the library's
    own (for example "PRAGMA cache_size=-65536").
    `create_sqlite_file`: when False, a SQLite database file that does not exist is an error
    instead of being created (for programs that only read).
    The pool of reading connections: `pool_size` kept open, up to `pool_max_overflow` more
    under load, a caller waits up to `pool_timeout` seconds for one, and a connection is
    replaced after `pool_recycle` seconds (None: never). Every connection is checked before
    use (`pool_pre_ping`), so one the server dropped is replaced, not handed out. The writer
    holds one connection of its own on top (on SQLite, in its worker process).
    """

    database_url: str = DEFAULT_DATABASE_URL
    synchronous: Synchronous = "NORMAL"
    busy_timeout_ms: int = 30_000
    pool_size: int = 5
    pool_max_overflow: int = 10
    pool_timeout: float = 30.0
    pool_recycle: float | None = None
    echo: bool = False
    writer: WriterOptions = WriterOptions()
    sqlite_pragmas: tuple[str, ...] = ()
    create_sqlite_file: bool = True

    def __post_init__(self) -> None:
        check_database_url(self.database_url)
        if self.synchronous not in ("NORMAL", "FULL"):
            raise InvalidValue(
                "synchronous", f"must be 'NORMAL' or 'FULL', got {self.synchronous!r}"
            )
        check_int("busy_timeout_ms", self.busy_timeout_ms, minimum=0, maximum=MAX_BUSY_TIMEOUT_MS)
        check_int("pool_size", self.pool_size, minimum=1)
        check_int("pool_max_overflow", self.pool_max_overflow, minimum=0)
        check_amount("pool_timeout", self.pool_timeout, "seconds")
        if self.pool_recycle is not None:
            check_amount("pool_recycle", self.pool_recycle, "seconds")
        check_bool("echo", self.echo)
        check_bool("create_sqlite_file", self.create_sqlite_file)
        if not isinstance(self.writer, WriterOptions):
            kind = type(self.writer).__name__
            raise InvalidValue("writer", f"expected a WriterOptions, got {kind}")
        if not isinstance(self.sqlite_pragmas, tuple):
            kind = type(self.sqlite_pragmas).__name__
            raise InvalidValue("sqlite_pragmas", f"expected a tuple of str, got {kind}")
        for pragma in self.sqlite_pragmas:
            if (
                not isinstance(pragma, str)
                or not pragma.upper().startswith("PRAGMA ")
                or ";" in pragma
            ):
                raise InvalidValue(
                    "sqlite_pragmas", f"holds one PRAGMA statement each, got {pragma!r}"
                )

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{field.name}={getattr(self, field.name)!r}"
            for field in fields(self)
            if field.name != "database_url"
        )
        return f"Settings(database_url={redact_url(self.database_url)!r}, {shown})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from `QUANTFLOW_DATABASE_URL` and `QUANTFLOW_SQLITE_SYNCHRONOUS`.

        Keyword overrides win over the environment; an override of None is ignored. A bad
        value from a variable raises InvalidValue naming the setting and the variable.
        """
        env = os.environ if environ is None else environ
        given = {key: value for key, value in overrides.items() if value is not None}
        unknown = sorted(set(given) - {field.name for field in fields(cls)})
        if unknown:
            raise InvalidValue(unknown[0], "is not a setting of Settings")
        from_variables: dict[str, str] = {}  # setting -> the variable it came from
        values: dict[str, object] = {}
        for setting, variable in (
            ("database_url", DATABASE_URL_ENV),
            ("synchronous", SYNCHRONOUS_ENV),
        ):
            text = env.get(variable)
            if text and setting not in given:
                values[setting] = text.strip().upper() if setting == "synchronous" else text
                from_variables[setting] = variable
        values.update(given)
        try:
            return replace(cls(), **values)  # type: ignore[arg-type]
        except InvalidValue as exc:
            source = from_variables.get(exc.field)
            if source is None:
                raise
            message = str(exc).removeprefix(f"{exc.field}: ")
            raise InvalidValue(exc.field, f"{message} (from ${source})") from None

    @property
    def is_sqlite(self) -> bool:
        return _parsed(self.database_url).get_backend_name() == "sqlite"


def check_database_url(database_url: object) -> URL:
    """The parsed URL, or InvalidValue saying which URL to write instead."""
    if not isinstance(database_url, str):
        kind = type(database_url).__name__
        raise InvalidValue("database_url", f"expected a str, got {kind}")
    example = f"write e.g. {DEFAULT_DATABASE_URL} or postgresql+asyncpg://user@host/dbname"
    try:
        url = _parsed(database_url)
    except Exception:  # SQLAlchemy raises ArgumentError or ValueError; the message is ours
        shown = _unparseable_preview(database_url)
        raise InvalidValue("database_url", f"is not a valid URL: {shown}; {example}") from None
    written = url.drivername.partition("+")[0]
    wanted = ASYNC_DRIVERS.get(_BACKEND_ALIASES.get(written, written))
    if wanted is None:
        raise InvalidValue(
            "database_url",
            f"{redact_url(database_url)} names the backend {url.drivername!r}, which QuantFlow "
            f"does not support; {example}",
        )
    if url.drivername != wanted:
        fixed = redact_url(url.set(drivername=wanted).render_as_string(hide_password=False))
        driver = wanted.partition("+")[2]
        raise InvalidValue(
            "database_url",
            f"{redact_url(database_url)} would not use the {driver} driver QuantFlow runs on; "
            f"write {fixed}",
        )
    return url


def redact_url(url: str | URL) -> str:
    """The URL with any password (in the user part or the query) masked, safe to log or print."""
    try:
        parsed = _parsed(url)
    except Exception:
        return "<unparseable database URL>"
    secret_keys = [key for key in parsed.query if _is_secret(key)]
    if secret_keys:
        parsed = parsed.update_query_dict(dict.fromkeys(secret_keys, _MASK))
    return parsed.render_as_string(hide_password=True).replace(quote(_MASK), _MASK)


def _parsed(url: str | URL) -> URL:
    # SQLAlchemy's engine package takes a tenth of a second or more to import: it loads with the
    # first URL parsed, so importing the configuration (as every command's help does) stays cheap.
    from sqlalchemy.engine import make_url

    return make_url(url)


def _unparseable_preview(text: str) -> str:
    """Text that is not a URL, shown only when it cannot hold a password."""
    if "@" in text or "pass" in text.lower() or len(text) > 80:
        return "<unparseable database URL>"
    return repr(text)


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_QUERY_WORDS)


def __getattr__(name: str) -> Any:
    if name == "WriterDefaults":
        warnings.warn(
            "WriterDefaults is now WriterOptions; the old name will go in a later release",
            DeprecationWarning,
            stacklevel=2,
        )
        return WriterOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
