"""No sweep leaves a backtest pending or running, however it ends: even while it is still
storing its pending backtests (a bad data set, a timeout, Ctrl-C early in a large grid).
A sweep and its pending backtests are stored in one transaction: all of them or none."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest

from quantflow_async import Database, Settings
from quantflow_async.backtest import BarsError, run_sweep, synthetic_bars
from tests.support.processes import reap

ROOT = Path(__file__).resolve().parents[2]
LARGE_GRID = {"fast": [2], "slow": list(range(3, 3003))}  # 3,000 configs


@pytest.fixture
async def sqlite_db(migrated_sqlite_url: str) -> Database:
    async with Database(settings=Settings(database_url=migrated_sqlite_url)) as db:
        await db.migrate()
        yield db  # type: ignore[misc]


async def statuses(db: Database) -> Counter[str]:
    return Counter(backtest.status for backtest in await db.backtests.list())


async def test_a_one_bar_data_set_is_refused_before_any_backtest_is_stored(
    sqlite_db: Database, tmp_path: Path
) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="one bar")).id
    one_bar = tmp_path / "one.csv"
    one_bar.write_text("time,open,high,low,close,volume\n2024-01-02,1,1,1,1,1\n")
    with pytest.raises(BarsError, match="one.csv: one bar: a stored backtest"):
        await run_sweep(
            sqlite_db, "sma_cross", {"fast": [2, 3], "slow": [5, 8]},
            {"A": synthetic_bars(300, seed=1), "B": one_bar}, strategy_id=strategy_id,
        )  # fmt: skip
    assert await sqlite_db.backtests.list() == []


@pytest.mark.slow  # 3,000 pending backtests stored, then cancelled
async def test_a_timeout_once_the_pending_backtests_are_stored_leaves_them_cancelled(
    sqlite_db: Database,
) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="timeout")).id
    timeouts: list[asyncio.Timeout] = []

    async def expire_once_some_are_stored() -> None:
        while len(await sqlite_db.backtests.list()) < 10:
            await anyio.sleep(0.005)
        timeouts[0].reschedule(asyncio.get_running_loop().time())

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(expire_once_some_are_stored)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as timeout:
                timeouts.append(timeout)
                await run_sweep(
                    sqlite_db, "sma_cross", LARGE_GRID, synthetic_bars(50, seed=1),
                    strategy_id=strategy_id,
                )  # fmt: skip
    counts = await statuses(sqlite_db)
    assert counts == {"cancelled": len(LARGE_GRID["slow"])}, counts
    assert [s.sweep.status for s in await sqlite_db.sweeps.list()] == ["interrupted"]


@pytest.mark.slow  # 3,000 pending backtests stored in a script, then cancelled
def test_ctrl_c_once_the_pending_backtests_are_stored_leaves_them_cancelled(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sweep.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"

    async def migrate() -> None:
        async with Database(url) as db:
            await db.migrate()

    anyio.run(migrate)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.backtest.sweep_workers_child", "grid", url,
         str(len(LARGE_GRID["slow"]))],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal gives a script
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "storing\n"
        deadline = time.monotonic() + 60
        while _stored(path) < 10:
            assert child.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, stderr = child.communicate(timeout=60)
    finally:
        reap(child)
    assert child.returncode in (-signal.SIGINT, 130, 1), stderr
    assert "KeyboardInterrupt" in stderr
    with contextlib.closing(sqlite3.connect(path)) as connection:
        counts = dict(connection.execute("SELECT status, count(*) FROM backtests GROUP BY 1"))
    assert counts == {"cancelled": len(LARGE_GRID["slow"])}, counts


def _stored(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        (count,) = connection.execute("SELECT count(*) FROM backtests").fetchone()
    return int(count)
