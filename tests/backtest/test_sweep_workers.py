"""A sweep's worker processes dying: replaced, what they finished kept, none left orphaned.

Faults are real: workers and main processes are SIGKILLed, as the kernel's out-of-memory
killer does, at moments the test waits for (a worker writes its pid when it starts a job).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import psutil
import pytest

from quantflow_async import Database, Settings
from quantflow_async.backtest import (
    StrategyConfigError,
    SweepProgress,
    run_backtest,
    run_sweep,
    synthetic_bars,
)
from tests.backtest.sweep_workers_child import Announced
from tests.support.processes import reap

ROOT = Path(__file__).resolve().parents[2]
BARS = synthetic_bars(3_000, seed=1)
KILLED = "the worker process exited with code -9"


@pytest.fixture
async def sqlite_db(migrated_sqlite_url: str) -> Database:
    async with Database(settings=Settings(database_url=migrated_sqlite_url)) as db:
        await db.migrate()
        yield db  # type: ignore[misc]


async def new_strategy(db: Database) -> int:
    return (await db.strategies.create(name="workers")).id


async def written_pid(pid_file: Path) -> int:
    """The pid a worker writes into `pid_file` when it starts that job."""
    with anyio.fail_after(60):
        while not pid_file.exists():
            await anyio.sleep(0.01)
    return int(pid_file.read_text())


async def kill_when_started(*pid_files: Path) -> None:
    """SIGKILL the worker of each job in turn, as soon as it starts the job."""
    for pid_file in pid_files:
        os.kill(await written_pid(pid_file), signal.SIGKILL)


async def error_of(db: Database, backtest_id: int) -> str:
    backtest = await db.backtests.get(backtest_id)
    assert backtest.status == "failed"
    assert backtest.results is not None
    return str(backtest.results["error"]["message"])


async def test_the_only_worker_killed_is_replaced_and_runs_the_later_backtests(
    sqlite_db: Database, tmp_path: Path
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    first = tmp_path / "first.pid"
    grid = [{"sleep": 60.0, "pid_file": str(first)}, {}, {"fast": 3}, {"slow": 30}]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(kill_when_started, first)
        result = await run_sweep(
            sqlite_db, Announced, grid, BARS, strategy_id=strategy_id, workers=1
        )
    assert (result.completed, result.failed) == (3, 1)
    assert result.worker_restarts == 1
    assert await error_of(sqlite_db, result.backtest_ids[0]) == KILLED
    for backtest_id, config in zip(result.backtest_ids[1:], grid[1:], strict=True):
        assert (await sqlite_db.backtests.get(backtest_id)).status == "completed"
        count = await sqlite_db.trades.count(backtest_id=backtest_id)
        assert count == len(run_backtest(Announced, BARS, config).executions) > 0


async def test_once_max_worker_restarts_are_spent_the_backtests_left_fail_with_the_reason(
    sqlite_db: Database, tmp_path: Path
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    pid_files = [tmp_path / f"{n}.pid" for n in range(3)]
    grid = [{"sleep": 60.0, "pid_file": str(pid_file)} for pid_file in pid_files]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(kill_when_started, *pid_files[:2])
        result = await run_sweep(
            sqlite_db, Announced, grid, BARS, strategy_id=strategy_id, workers=1,
            max_worker_restarts=1,
        )  # fmt: skip
    assert (result.completed, result.failed) == (0, 3)
    assert result.worker_restarts == 1
    assert [await error_of(sqlite_db, i) for i in result.backtest_ids] == [
        KILLED,
        KILLED,
        "every worker process exited before this backtest ran "
        "(1 of max_worker_restarts=1 replacements made)",
    ]
    assert not pid_files[2].exists()


@pytest.mark.parametrize("value", [-1, True, 1.5])
async def test_a_bad_max_worker_restarts_is_named_and_stores_nothing(
    sqlite_db: Database, value: object
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    with pytest.raises(StrategyConfigError, match=r"^max_worker_restarts: must be an int >= 0"):
        await run_sweep(
            sqlite_db, "sma_cross", {"fast": [2]}, BARS, strategy_id=strategy_id,
            max_worker_restarts=value,  # type: ignore[arg-type]
        )  # fmt: skip
    assert await sqlite_db.backtests.list() == []


@pytest.mark.slow  # waits out a 5 s deadline when all is well
async def test_a_finished_backtest_stays_completed_when_its_worker_dies_on_the_next_job(
    sqlite_db: Database, tmp_path: Path
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    bars = synthetic_bars(50_000, seed=1)
    second = tmp_path / "second.pid"
    grid = [{"fast": 2, "slow": 5}, {"sleep": 60.0, "pid_file": str(second)}, {"fast": 3}]
    fills = len(run_backtest(Announced, bars, grid[0]).executions)
    killed: list[int] = []

    def kill_once(pid: int) -> None:
        if not killed:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    def progress(report: SweepProgress) -> None:
        # Reading stops after the first of the first backtest's two chunks of fills, each
        # larger than a pipe holds: the worker is left sending the second while its outcome
        # waits behind it. Its worker may take the next job only once that outcome is out,
        # so the second backtest's pid file appears only if the outcome was left behind.
        if report.fills_stored and not killed:
            deadline = time.monotonic() + 5
            while not second.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            if second.exists():
                kill_once(int(second.read_text()))

    async def kill_second() -> None:
        kill_once(await written_pid(second))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(kill_second)
        result = await run_sweep(
            sqlite_db, Announced, grid, bars, strategy_id=strategy_id, workers=1,
            chunk_size=fills // 2 + 1, progress=progress,
        )  # fmt: skip
    first = await sqlite_db.backtests.get(result.backtest_ids[0])
    assert first.status == "completed"
    assert await sqlite_db.trades.count(backtest_id=first.id) == fills
    assert await error_of(sqlite_db, result.backtest_ids[1]) == KILLED
    assert (await sqlite_db.backtests.get(result.backtest_ids[2])).status == "completed"


def ended(process: psutil.Process) -> bool:
    """Gone, or a zombie nobody reaps: a process that runs no more."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_workers_inside_long_backtests_exit_within_seconds_of_their_main_process_killed(
    tmp_path: Path, start_method: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sweep.sqlite3'}"

    async def migrate() -> None:
        async with Database(url) as db:
            await db.migrate()

    anyio.run(migrate)
    pid_files = [tmp_path / f"{n}.pid" for n in range(2)]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.backtest.sweep_workers_child", "long", url,
         str(tmp_path), start_method],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while not all(pid_file.exists() for pid_file in pid_files):  # both inside a backtest
            assert child.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.01)
        workers = [psutil.Process(int(pid_file.read_text())) for pid_file in pid_files]
        descendants = psutil.Process(child.pid).children(recursive=True)
        os.kill(child.pid, signal.SIGKILL)  # the main process alone
        child.wait()
        deadline = time.monotonic() + 2
        while not all(ended(worker) for worker in workers) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [w.pid for w in workers if not ended(w)] == []
    finally:
        reap(child)
        for process in descendants:  # the writer's process and multiprocessing's helpers
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
