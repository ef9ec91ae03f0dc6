"""The `quantflow` command, run as a user runs it: a subprocess, one clear line on a mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def quantflow(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantflow_async.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_migrate_creates_the_default_database_in_the_working_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    result = quantflow("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "migrated sqlite+aiosqlite:///./dev.sqlite3" in result.stdout
    assert (tmp_path / "dev.sqlite3").exists()
    counted = quantflow("count-trades", cwd=tmp_path, env=env)
    assert (counted.returncode, counted.stdout.strip()) == (0, "0")


def test_migrate_honours_the_environment_url(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QUANTFLOW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'env.sqlite3'}",
    }
    assert quantflow("migrate", cwd=tmp_path, env=env).returncode == 0
    assert (tmp_path / "env.sqlite3").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["count-trades"], "the schema is missing: run `quantflow migrate`"),
        (["--database-url", "nonsense", "migrate"], "not a valid URL"),
        (
            ["--database-url", "sqlite+aiosqlite:////no/such/dir/q.sqlite3", "migrate"],
            "does not exist",
        ),
        (["count-trades", "--backtest-id", "0"], "backtest_id: must be a positive id"),
    ],
    ids=["not migrated", "bad url", "missing directory", "bad id"],
)
def test_user_mistakes_print_one_line_and_exit_non_zero(
    tmp_path: Path, args: list[str], message: str
) -> None:
    env = {**os.environ, "QUANTFLOW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'q.sqlite3'}"}
    result = quantflow(*args, cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
