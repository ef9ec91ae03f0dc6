"""A sweep's workers go on while its outcomes wait for the database.

Outcomes are recorded with the writer held back (no new fill reaches it meanwhile), and they
may wait for a lock. The workers' messages are still read in that time, READ_AHEAD of them,
so the workers go on running backtests instead of waiting for room in their pipes. The wait
is real: another connection holds the sweep's backtest rows locked against updates (FOR NO
KEY UPDATE), which the status updates wait for and the fills' foreign keys do not.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import asyncpg
import pytest

from quantflow_async import Database
from quantflow_async.backtest import SweepProgress, run_sweep, synthetic_bars
from quantflow_async.backtest.sweep_outcomes import READ_AHEAD
from tests.backtest.sweep_workers_child import Announced
from tests.conftest import postgres_dsn

BARS = synthetic_bars(20_000, seed=3)  # about 2,000 fills a job: 140 KB, beyond a pipe's 64
MESSAGES_PER_JOB = 3  # started, its fills in one chunk, completed


async def hold_the_rows(url: str, strategy_id: int, started: list[Path], until: int) -> int:
    """Once the first job has started, lock every backtest of the strategy against updates,
    and hold the lock until `until` jobs have started or 20 seconds passed; return how many
    had started when it let go."""
    connection = await asyncpg.connect(postgres_dsn(url))
    try:
        while not started[0].exists():
            await anyio.sleep(0.01)
        async with connection.transaction():
            await connection.execute(
                "SELECT id FROM backtests WHERE strategy_id = $1 FOR NO KEY UPDATE", strategy_id
            )
            with anyio.move_on_after(20):
                while sum(path.exists() for path in started) < until:
                    await anyio.sleep(0.01)
            return sum(path.exists() for path in started)
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_workers_go_on_running_backtests_while_the_outcomes_wait_for_a_lock(
    postgres_database_url: str, tmp_path: Path
) -> None:
    # Each job sleeps a tenth of a second, so the first outcomes wait for the lock when about
    # three jobs have started. Reading stopped with them, a fourth would be the last to start.
    until = READ_AHEAD // MESSAGES_PER_JOB + 1
    jobs = until + 4
    started = [tmp_path / f"{n}.pid" for n in range(jobs)]
    grid = [{"pid_file": str(path), "sleep": 0.1} for path in started]
    seen: list[int] = []
    async with Database(postgres_database_url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="reading ahead")

        async def hold() -> None:
            seen.append(await hold_the_rows(postgres_database_url, strategy.id, started, until))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            result = await run_sweep(
                db, Announced, grid, BARS, strategy_id=strategy.id, workers=1,
                chunk_size=100_000,
            )  # fmt: skip
    assert seen == [until]
    assert result.completed == jobs
    assert result.fills_stored > jobs


class Stop(Exception):
    """Raised by a progress callback to stop a sweep part way."""


async def test_an_error_while_fills_are_submitted_is_raised_as_itself(
    migrated_sqlite_url: str,
) -> None:
    # One fill a message: the reading soon waits on a full READ_AHEAD, and the submitting
    # task's error ends the stream under it. The caller gets that error, not a group of it
    # and the reading's BrokenResourceError.
    def progress(report: SweepProgress) -> None:
        if report.fills_stored >= 200:
            raise Stop(f"stopped at {report.fills_stored} fills")

    async with Database(migrated_sqlite_url) as db:
        strategy = await db.strategies.create(name="stopped while submitting")
        with pytest.raises(Stop):
            await run_sweep(
                db, "sma_cross", {"fast": [2, 3], "slow": [5, 6]}, synthetic_bars(5_000, seed=1),
                strategy_id=strategy.id, workers=2, chunk_size=1, progress=progress,
            )  # fmt: skip
        (stopped,) = await db.sweeps.list()
    assert stopped.sweep.status == "interrupted"
    assert set(stopped.counts) <= {"completed", "cancelled"}
