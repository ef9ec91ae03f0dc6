"""The `quantflow` command: it does its job, and a mistake is one clear line.

A mistake exits non-zero with one line on stderr, no traceback, and leaves no file behind.
The tests call the command's entry point in this process, with their own working directory,
environment and streams (`tests.support.cli`); a few run it as a user does, as a new process.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from alembic import command as alembic_command
from sqlalchemy import Connection

from quantflow_async import Database
from quantflow_async.store.migrations import alembic_config, head_revision
from tests.support.cli import quantflow, quantflow_process


def clean_env(**variables: str) -> dict[str, str]:
    """The environment without any QUANTFLOW_ variable, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    return {**env, **variables}


def assert_one_line_mistake(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_migrate_creates_the_default_database_in_the_working_directory(tmp_path: Path) -> None:
    result = quantflow_process("migrate", cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    assert "migrated sqlite+aiosqlite:///./dev.sqlite3" in result.stdout
    assert (tmp_path / "dev.sqlite3").exists()
    counted = quantflow_process("count-trades", cwd=tmp_path, env=clean_env())
    assert (counted.returncode, counted.stdout.strip()) == (0, "0")


def test_migrate_says_whether_it_changed_the_schema(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'twice.sqlite3'}"
    first = quantflow("migrate", "--database-url", url, cwd=tmp_path, env=clean_env())
    again = quantflow("migrate", "--database-url", url, cwd=tmp_path, env=clean_env())
    asyncio.run(_downgrade(url, "007"))
    later = quantflow("migrate", "--database-url", url, cwd=tmp_path, env=clean_env())
    head = head_revision()
    assert first.stdout == f"migrated {url} to the newest schema, revision {head}\n"
    done = f"{url} is at the newest schema already, revision {head}: nothing to do\n"
    assert again.stdout == done
    newer = f"migrated {url} from revision 007 to the newest schema, revision {head}\n"
    assert later.stdout == newer


async def _downgrade(url: str, revision: str) -> None:
    config = alembic_config()

    def downgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        alembic_command.downgrade(config, revision)

    async with Database(url) as db, db.engine.connect() as connection:
        await connection.run_sync(downgrade)


def test_migrate_honours_the_environment_url(tmp_path: Path) -> None:
    env = clean_env(QUANTFLOW_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'env.sqlite3'}")
    assert quantflow("migrate", cwd=tmp_path, env=env).returncode == 0
    assert (tmp_path / "env.sqlite3").exists()


@pytest.mark.parametrize("place", ["before", "after"])
def test_common_options_are_accepted_before_or_after_the_command(
    tmp_path: Path, place: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'placed.sqlite3'}"
    options = ["--database-url", url, "-v"]
    for command in ("migrate", "count-trades"):
        argv = [*options, command] if place == "before" else [command, *options]
        result = quantflow(*argv, cwd=tmp_path, env=clean_env())
        assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    assert os.listdir(tmp_path) == ["placed.sqlite3"]


def test_an_option_after_the_command_wins_over_one_before_it(tmp_path: Path) -> None:
    first, second = tmp_path / "first.sqlite3", tmp_path / "second.sqlite3"
    argv = ["--database-url", f"sqlite+aiosqlite:///{first}", "migrate"]
    result = quantflow(*argv, "--database-url", f"sqlite+aiosqlite:///{second}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (second.exists(), first.exists()) == (True, False)


WRONG_URLS = [
    ("foo://bar", "does not support"),
    ("sqlite:///x.sqlite3", "write sqlite+aiosqlite:///x.sqlite3"),
    ("postgresql://postgres@127.0.0.1:5432/x", "write postgresql+asyncpg://postgres@127.0.0.1"),
]


@pytest.mark.parametrize(
    "url, fix", WRONG_URLS, ids=["unknown backend", "sync sqlite", "no +asyncpg"]
)
@pytest.mark.parametrize("given", ["option before", "option after", "environment"])
def test_a_wrong_url_is_one_line_that_says_what_to_write_and_leaves_no_file(
    tmp_path: Path, url: str, fix: str, given: str
) -> None:
    argv = {
        "option before": ["--database-url", url, "migrate"],
        "option after": ["migrate", "--database-url", url],
        "environment": ["migrate"],
    }[given]
    env = clean_env(QUANTFLOW_DATABASE_URL=url) if given == "environment" else clean_env()
    result = quantflow(*argv, cwd=tmp_path, env=env)
    assert_one_line_mistake(result, fix)
    if given == "environment":
        assert "$QUANTFLOW_DATABASE_URL" in result.stderr
    assert os.listdir(tmp_path) == []


def test_counting_trades_in_a_missing_file_says_to_migrate_and_creates_nothing(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing.sqlite3'}"
    result = quantflow("count-trades", "--database-url", url, cwd=tmp_path, env=clean_env())
    assert_one_line_mistake(result, "does not exist; run `quantflow migrate`")
    assert os.listdir(tmp_path) == []


def test_counting_trades_in_an_unmigrated_file_says_to_migrate(tmp_path: Path) -> None:
    (tmp_path / "empty.sqlite3").touch()
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
    result = quantflow("count-trades", "--database-url", url, cwd=tmp_path, env=clean_env())
    assert_one_line_mistake(result, "the schema is missing: run `quantflow migrate`")


def test_a_bad_environment_setting_names_its_variable(tmp_path: Path) -> None:
    env = clean_env(QUANTFLOW_SQLITE_SYNCHRONOUS="bogus")
    result = quantflow("migrate", cwd=tmp_path, env=env)
    assert_one_line_mistake(result, "$QUANTFLOW_SQLITE_SYNCHRONOUS")
    assert "synchronous" in result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--database-url", "nonsense", "migrate"], "not a valid URL"),
        (
            ["--database-url", "sqlite+aiosqlite:////no/such/dir/q.sqlite3", "migrate"],
            "does not exist",
        ),
        (["count-trades", "--backtest-id", "0"], "backtest_id: must be a positive id"),
        (["count-trades", "--backtest-id", "x"], "invalid int value"),
        (["migrate", "--no-such-option"], "unrecognized arguments"),
        (["frobnicate"], "invalid choice"),
        ([], "required: COMMAND"),
    ],
    ids=["bad url", "missing directory", "bad id", "id not a number", "unknown option",
         "unknown command", "no command"],
)  # fmt: skip
def test_user_mistakes_print_one_line_and_exit_non_zero(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "q.sqlite3").touch()
    env = clean_env(QUANTFLOW_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'q.sqlite3'}")
    result = quantflow(*args, cwd=tmp_path, env=env)
    assert_one_line_mistake(result, message)
    assert os.listdir(tmp_path) == ["q.sqlite3"]


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = quantflow_process("help", cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    for command in ("migrate", "count-trades", "help", "--database-url"):
        assert command in result.stdout
    assert os.listdir(tmp_path) == []


def test_help_of_one_command_shows_its_options(tmp_path: Path) -> None:
    result = quantflow("help", "count-trades", cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    assert "usage: quantflow count-trades" in result.stdout
    assert "--backtest-id" in result.stdout
