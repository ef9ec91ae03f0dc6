"""A search's worker processes dying: replaced while restarts are left, the search going on;
once none is left, the search stops, its sweep interrupted and resumable. A search whose
store fails stops with the store's error.

Faults are real: a worker is SIGKILLed while it runs the first trial, as the kernel's
out-of-memory killer would; the disk fills up (SQLite's page limit).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from quantflow_async import Database, Settings, run_search
from quantflow_async.backtest import synthetic_bars
from quantflow_async.config import WriterOptions
from quantflow_async.errors import BacktestError, QuantFlowError
from tests.backtest.search_child import FirstOneWaits

BARS = synthetic_bars(300, seed=2)


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> Database:
    async with Database(settings=Settings(database_url=sqlite_url)) as db:
        await db.migrate()
        yield db  # type: ignore[misc]


async def kill_when_started(pid_file: Path) -> None:
    with anyio.fail_after(60):
        while not pid_file.exists():
            await anyio.sleep(0.01)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


def space(pid_file: Path) -> dict[str, Any]:
    return {"fast": {"int": [2, 6]}, "slow": {"int": [20, 40]}, "pid_file": str(pid_file)}


async def test_a_worker_killed_mid_search_is_replaced_and_the_search_goes_on(
    sqlite_db: Database, tmp_path: Path
) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="search workers")).id
    pid_file = tmp_path / "first.pid"
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(kill_when_started, pid_file)
        result = await run_search(
            sqlite_db, FirstOneWaits, space(pid_file), BARS, strategy_id=strategy_id,
            trials=4, maximize="return_pct", seed=1, workers=1,
        )  # fmt: skip
    assert [trial.state for trial in result.search.trials] == ["failed"] + ["completed"] * 3
    failed = await sqlite_db.backtests.get(result.search.trials[0].backtest_id)
    assert failed.results is not None
    assert failed.results["error"]["message"] == "the worker process exited with code -9"
    assert (await sqlite_db.sweeps.get(result.sweep_id)).status == "completed"


async def test_once_no_worker_may_start_the_search_stops_interrupted_and_resumes(
    sqlite_db: Database, tmp_path: Path
) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="search workers")).id
    pid_file = tmp_path / "first.pid"
    arguments: dict[str, Any] = {
        "strategy_id": strategy_id, "trials": 4, "maximize": "return_pct", "seed": 1,
        "workers": 1, "max_worker_restarts": 0,
    }  # fmt: skip
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(kill_when_started, pid_file)
        with pytest.raises(BacktestError, match="every worker process exited and none may"):
            await run_search(sqlite_db, FirstOneWaits, space(pid_file), BARS, **arguments)
    (summary,) = await sqlite_db.sweeps.list()
    assert summary.sweep.status == "interrupted"
    assert summary.counts == {"failed": 1, "cancelled": 1}
    resumed = await run_search(
        sqlite_db, FirstOneWaits, space(pid_file), BARS, resume=summary.sweep.id, **arguments
    )
    assert [trial.state for trial in resumed.search.trials] == ["failed"] + ["completed"] * 3
    assert await sqlite_db.sweeps.counts(summary.sweep.id) == {"failed": 1, "completed": 3}


async def test_a_search_whose_disk_fills_up_stops_with_the_storage_error_itself(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    async with Database(migrated_sqlite_url) as db:
        strategy_id = (await db.strategies.create(name="full disk")).id
    # Room for the sweep and its trials, not for their fills.
    pages = (tmp_path / "test.sqlite3").stat().st_size // 4096 + 60
    settings = Settings(
        database_url=migrated_sqlite_url,
        writer=WriterOptions(retry_attempts=1, retry_initial_delay=0.01, retry_max_delay=0.01),
        sqlite_pragmas=(f"PRAGMA max_page_count = {pages}",),
    )
    async with Database(settings=settings) as db:
        with pytest.raises(QuantFlowError, match="full"):
            await run_search(
                db, "sma_cross", {"fast": {"int": [2, 5]}, "slow": {"int": [6, 12]}},
                synthetic_bars(4_000, seed=1), strategy_id=strategy_id, trials=8,
                maximize="return_pct", seed=1, workers=2, chunk_size=50,
            )  # fmt: skip
