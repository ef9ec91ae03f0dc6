"""Security basics: values are never SQL, passwords are never logged, files are private."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quantflow_async import Database, Settings

from ..conftest import make_fill

HOSTILE = "x'); DROP TABLE trades; --"


async def test_hostile_strings_are_stored_as_plain_values(db: Database, strategy_id: int) -> None:
    strategy = await db.strategies.create(name=HOSTILE, description=HOSTILE, config={HOSTILE: 1})
    await db.trades.insert_many([make_fill(strategy_id, symbol="X';--", external_id=HOSTILE)])
    async with db.writer() as writer:
        await writer.submit(make_fill(strategy_id, 1, metadata={"note": HOSTILE}), wait=True)
    assert (await db.strategies.get_by_name(HOSTILE)).description == HOSTILE
    assert strategy.config == {HOSTILE: 1}
    assert [t.external_id for t in await db.trades.list(symbol="X';--")] == [HOSTILE]
    assert await db.trades.count() == 2


async def test_database_urls_are_logged_without_their_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "postgresql+asyncpg://trader:s3cret-pw@127.0.0.1:1/nowhere"
    async with Database(settings=Settings(database_url=url)):
        pass
    with pytest.raises(ValueError) as caught:
        Settings(database_url="postgresql+asyncpg://trader:s3cret-pw@127.0.0.1:nonsense/x")
    assert "trader" in caplog.text
    assert "s3cret-pw" not in caplog.text
    assert "s3cret-pw" not in str(caught.value)


async def test_every_file_of_a_new_database_is_private(tmp_path: Path) -> None:
    path = tmp_path / "private.sqlite3"
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        async with db.writer() as writer:
            await writer.submit(make_fill(strategy.id), wait=True)
            files = sorted(tmp_path.glob("private.sqlite3*"))
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert {"private.sqlite3", "private.sqlite3-wal", "private.sqlite3-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}


async def test_a_password_in_the_url_query_is_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "postgresql+asyncpg://trader@127.0.0.1:1/nowhere?password=s3cret-pw"
    async with Database(settings=Settings(database_url=url)):
        pass
    assert "opened postgresql+asyncpg://trader@127.0.0.1:1/nowhere?password=***" in caplog.text
    assert "s3cret-pw" not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://trader:s3cret-pw@127.0.0.1:1/none",
        "postgresql+asyncpg://trader@127.0.0.1:1/none?password=s3cret-pw",
    ],
    ids=["in the user part", "in the query"],
)
def test_the_verbose_cli_never_prints_the_password(tmp_path: Path, url: str) -> None:
    command = [sys.executable, "-m", "quantflow_async.cli", "-v", "count-trades"]
    env = {**os.environ, "QUANTFLOW_DATABASE_URL": url}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "INFO" in result.stderr  # -v logged what the library did
    assert "s3cret-pw" not in result.stdout + result.stderr
