"""Configuration: one immutable `Settings` object, read from the environment in one place.

Nothing in the library reads the environment except `Settings.from_env()`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy.engine import make_url

from quantflow_async.errors import InvalidValue

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./dev.sqlite3"
DATABASE_URL_ENV = "QUANTFLOW_DATABASE_URL"
SYNCHRONOUS_ENV = "QUANTFLOW_SQLITE_SYNCHRONOUS"

Synchronous = Literal["NORMAL", "FULL"]


@dataclass(frozen=True, slots=True)
class WriterDefaults:
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
        _check_count("batch_size", self.batch_size, minimum=1)
        _check_count("max_queue", self.max_queue, minimum=1)
        _check_count("retry_attempts", self.retry_attempts, minimum=0)
        _check_count("max_rejected", self.max_rejected, minimum=0)
        _check_seconds("max_latency", self.max_latency, allow_zero=True)
        _check_seconds("retry_initial_delay", self.retry_initial_delay, allow_zero=True)
        _check_seconds("retry_max_delay", self.retry_max_delay, allow_zero=True)
        _check_seconds("commit_timeout", self.commit_timeout, allow_zero=False)
        if self.retry_max_delay < self.retry_initial_delay:
            raise InvalidValue(
                "retry_max_delay",
                f"must be >= retry_initial_delay ({self.retry_initial_delay}), "
                f"got {self.retry_max_delay}",
            )


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(name, f"expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise InvalidValue(name, f"must be >= {minimum}, got {value}")


def _check_seconds(name: str, value: object, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(name, f"expected seconds as a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidValue(name, f"must be a finite number of seconds {bound}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a `Database` needs to know, with the defaults in one place.

    `synchronous` applies to SQLite only: NORMAL survives a crash of the process,
    FULL also survives a power loss or an OS crash, at the cost of an fsync per commit.
    `sqlite_pragmas` are extra statements run on every SQLite connection after the library's
    own (for example "PRAGMA cache_size=-65536").
    """

    database_url: str = DEFAULT_DATABASE_URL
    synchronous: Synchronous = "NORMAL"
    busy_timeout_ms: int = 30_000
    pool_size: int = 5
    echo: bool = False
    writer: WriterDefaults = WriterDefaults()
    sqlite_pragmas: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {self.synchronous!r}")
        if self.busy_timeout_ms < 0:
            raise ValueError(f"busy_timeout_ms must be >= 0, got {self.busy_timeout_ms}")
        for pragma in self.sqlite_pragmas:
            if not pragma.upper().startswith("PRAGMA ") or ";" in pragma:
                raise ValueError(f"sqlite_pragmas holds one PRAGMA statement each, got {pragma!r}")
        if self.pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {self.pool_size}")
        try:
            make_url(self.database_url)
        except Exception as exc:  # SQLAlchemy raises ArgumentError; keep the message ours
            shown = redact_url(self.database_url)
            raise ValueError(f"database_url is not a valid URL: {shown}") from exc

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from `QUANTFLOW_DATABASE_URL` and `QUANTFLOW_SQLITE_SYNCHRONOUS`.

        Keyword overrides win over the environment; an override of None is ignored.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if env.get(DATABASE_URL_ENV):
            values["database_url"] = env[DATABASE_URL_ENV]
        if env.get(SYNCHRONOUS_ENV):
            values["synchronous"] = env[SYNCHRONOUS_ENV].upper()
        values.update({key: value for key, value in overrides.items() if value is not None})
        return replace(cls(), **values)  # type: ignore[arg-type]

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to log or print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
