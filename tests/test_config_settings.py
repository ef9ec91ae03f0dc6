"""Settings: every mistake is an InvalidValue naming the setting, found before anything opens.

A value that came from an environment variable names the variable too; a URL that names the
wrong driver says which URL to write instead; passwords never show.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from quantflow_async import Database, InvalidValue, Settings, WriterOptions
from quantflow_async.config import MAX_BUSY_TIMEOUT_MS, redact_url

BAD_SETTINGS: list[tuple[str, Any, str]] = [
    ("synchronous", "normal", "'NORMAL' or 'FULL'"),
    ("busy_timeout_ms", -1, "between 0 and"),
    ("busy_timeout_ms", 2**31, "between 0 and 2147483647"),
    ("busy_timeout_ms", 1.5, "expected an int"),
    ("pool_size", 0, ">= 1"),
    ("pool_size", True, "expected an int"),
    ("echo", "yes", "True or False"),
    ("sqlite_pragmas", "PRAGMA cache_size=1", "tuple of str"),
    ("sqlite_pragmas", ("PRAGMA a=1; DROP TABLE trades",), "one PRAGMA statement"),
    ("writer", {"batch_size": 10}, "WriterOptions"),
    ("create_sqlite_file", None, "True or False"),
    ("database_url", 42, "expected a str"),
]


@pytest.mark.parametrize(
    "setting, value, message", BAD_SETTINGS, ids=[f"{s}={v!r}"[:40] for s, v, _ in BAD_SETTINGS]
)
def test_a_bad_setting_is_an_invalid_value_naming_it(
    setting: str, value: Any, message: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        Settings(**{setting: value})
    assert caught.value.field == setting
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "option, value",
    [
        ("batch_size", 0),
        ("max_latency", -0.1),
        ("max_latency", float("nan")),
        ("max_queue", 0),
        ("retry_attempts", -1),
        ("retry_initial_delay", "fast"),
        ("retry_max_delay", 0.01),
    ],
)
def test_a_bad_writer_default_is_an_invalid_value_naming_it(option: str, value: Any) -> None:
    with pytest.raises(InvalidValue) as caught:
        WriterOptions(**{option: value})
    assert caught.value.field == option


WRONG_URLS = [
    ("foo://bar", "names the backend 'foo', which QuantFlow does not support"),
    ("sqlite:///x.sqlite3", "write sqlite+aiosqlite:///x.sqlite3"),
    ("sqlite+pysqlite:///x.sqlite3", "write sqlite+aiosqlite:///x.sqlite3"),
    ("postgresql://trader@db.example/q", "write postgresql+asyncpg://trader@db.example/q"),
    ("postgres://trader@db.example/q", "write postgresql+asyncpg://trader@db.example/q"),
    ("postgresql+psycopg://trader@db.example/q", "write postgresql+asyncpg://"),
    ("nonsense", "is not a valid URL: 'nonsense'"),
]


@pytest.mark.parametrize("url, fix", WRONG_URLS, ids=[url for url, _ in WRONG_URLS])
def test_a_wrong_url_is_refused_with_the_url_to_write(url: str, fix: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        Settings(database_url=url)
    assert caught.value.field == "database_url"
    assert fix in str(caught.value)


def test_a_sync_sqlite_url_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue):
        Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert os.listdir(tmp_path) == []


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(InvalidValue) as caught:
        Settings.from_env({"QUANTFLOW_SQLITE_SYNCHRONOUS": "bogus"})
    assert caught.value.field == "synchronous"
    assert "$QUANTFLOW_SQLITE_SYNCHRONOUS" in str(caught.value)


def test_a_wrong_environment_url_names_the_variable_and_the_fix() -> None:
    with pytest.raises(InvalidValue) as caught:
        Settings.from_env({"QUANTFLOW_DATABASE_URL": "sqlite:///x.sqlite3"})
    assert "$QUANTFLOW_DATABASE_URL" in str(caught.value)
    assert "write sqlite+aiosqlite:///x.sqlite3" in str(caught.value)


def test_an_override_wins_over_a_bad_environment_value() -> None:
    settings = Settings.from_env({"QUANTFLOW_SQLITE_SYNCHRONOUS": "bogus"}, synchronous="FULL")
    assert settings.synchronous == "FULL"


def test_an_environment_value_is_read_case_insensitively() -> None:
    assert Settings.from_env({"QUANTFLOW_SQLITE_SYNCHRONOUS": "full"}).synchronous == "FULL"


async def test_the_largest_busy_timeout_sqlite_accepts_is_applied(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, busy_timeout_ms=MAX_BUSY_TIMEOUT_MS)
    async with Database(settings=settings) as db, db.engine.connect() as connection:
        applied = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
    assert applied == MAX_BUSY_TIMEOUT_MS


PASSWORD_URLS = [
    "postgresql+asyncpg://trader:s3cret-pw@db.example:5432/q",
    "postgresql+asyncpg://trader@db.example:5432/q?password=s3cret-pw",
    "postgresql+asyncpg://trader@db.example/q?sslpassword=s3cret-pw&application_name=bot",
]


@pytest.mark.parametrize("url", PASSWORD_URLS, ids=["in the user part", "query", "ssl query"])
def test_the_repr_of_settings_never_shows_the_password(url: str) -> None:
    settings = Settings(database_url=url)
    assert "s3cret-pw" not in repr(settings)
    assert "trader" in repr(settings)
    assert "s3cret-pw" not in repr(replace(settings, pool_size=2))


@pytest.mark.parametrize("url", PASSWORD_URLS, ids=["in the user part", "query", "ssl query"])
def test_redact_url_masks_the_password_wherever_it_is(url: str) -> None:
    shown = redact_url(url)
    assert "s3cret-pw" not in shown
    assert "***" in shown
    assert shown.startswith("postgresql+asyncpg://trader")


def test_a_url_error_never_shows_the_password() -> None:
    with pytest.raises(InvalidValue) as caught:
        Settings(database_url="postgresql://trader@db.example/q?password=s3cret-pw")
    assert "s3cret-pw" not in str(caught.value)


def test_the_old_name_writer_defaults_still_works_and_says_it_is_deprecated() -> None:
    import quantflow_async
    import quantflow_async.config

    for module in (quantflow_async, quantflow_async.config):
        with pytest.warns(DeprecationWarning, match="WriterDefaults is now WriterOptions"):
            old = module.WriterDefaults  # type: ignore[attr-defined]
        assert old is WriterOptions
