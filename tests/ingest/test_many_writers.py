"""Many writers, one database: processes ingesting at once, some fills re-delivered across
them, leave exact totals: every fill once, nothing lost, no error."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from quantflow_async import Database

from ..conftest import T0

CHILD = Path(__file__).with_name("many_writers_child.py")


async def _strategy_and_backtest(url: str) -> tuple[int, int]:
    async with Database(url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="many")
        backtest = await db.backtests.create(
            strategy_id=strategy.id,
            name="many",
            start_date=T0,
            end_date=T0 + timedelta(days=30),
            initial_capital=1,
        )
    return strategy.id, backtest.id


async def _ingest_at_once(url: str, processes: int, per_process: int) -> list[tuple[int, int]]:
    strategy_id, backtest_id = await _strategy_and_backtest(url)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            url,
            str(strategy_id),
            str(backtest_id),
            str(index),
            str(processes),
            str(per_process),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for index in range(processes)
    ]
    results = []
    for child in children:
        stdout, stderr = await asyncio.wait_for(child.communicate(), timeout=300)
        assert child.returncode == 0, stderr.decode()
        written, duplicates = map(int, stdout.split())
        results.append((written, duplicates))
    return results


async def _distinct_and_total(url: str) -> tuple[int, int]:
    async with Database(url) as db:
        total = await db.trades.count()
        distinct = {t.external_id async for t in db.trades.stream()}
    return len(distinct), total


@pytest.mark.slow
@pytest.mark.postgres
async def test_four_processes_into_one_postgres_database_store_each_fill_once(
    postgres_database_url: str,
) -> None:
    per_process = 50_000
    results = await _ingest_at_once(postgres_database_url, 4, per_process)
    assert sum(written for written, _ in results) == 4 * per_process
    assert sum(duplicates for _, duplicates in results) == 4 * per_process // 10
    assert await _distinct_and_total(postgres_database_url) == (4 * per_process, 4 * per_process)


@pytest.mark.slow
async def test_two_processes_on_one_sqlite_file_take_turns_without_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    per_process = 50_000
    results = await _ingest_at_once(url, 2, per_process)
    assert sum(written for written, _ in results) == 2 * per_process
    assert sum(duplicates for _, duplicates in results) == 2 * per_process // 10
    assert await _distinct_and_total(url) == (2 * per_process, 2 * per_process)
