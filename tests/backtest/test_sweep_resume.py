"""Resuming a sweep: after Ctrl-C, SIGKILL of its process or a cancellation, `run_sweep(...,
resume=ID)` runs only the jobs that did not complete, and the sweep ends as an uninterrupted
run of it does: the same completed backtests, metrics and fills, none twice, nothing left
pending or running, no fill of a backtest that did not complete. Both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from quantflow_async import Database, InvalidValue, NotFound
from quantflow_async.backtest import SweepProgress, run_sweep, synthetic_bars
from quantflow_async.backtest.sweep_outcomes import SweepOutcomes
from tests.backtest import resume_child
from tests.backtest.sweep_outcomes import assert_same_sweep, orphans, outcomes
from tests.conftest import POSTGRES_ROUND_IN_CI
from tests.support.processes import reap

ROOT = Path(__file__).resolve().parents[2]
SMALL_GRID = {"fast": [2, 3, 4], "slow": [5, 8]}
SMALL_DATA = {"A": synthetic_bars(400, seed=1), "B": synthetic_bars(400, seed=2)}


class Stop(Exception):
    """Raised by a progress callback to stop a sweep part way."""


def stop_after(done: int) -> Callable[[SweepProgress], None]:
    def progress(report: SweepProgress) -> None:
        if report.done >= done:
            raise Stop(f"stopped after {report.done}")

    return progress


async def uninterrupted(db: Database, strategy_id: int, grid: object, data: object) -> int:
    result = await run_sweep(db, "sma_cross", grid, data, strategy_id=strategy_id)  # type: ignore[arg-type]
    assert result.sweep_id is not None
    return result.sweep_id


async def test_a_progress_callback_that_raised_is_not_called_again(db: Database) -> None:
    # Both of a sweep's tasks report progress (fills handed over, backtests recorded), and
    # the one that did not raise may report again before it is cancelled: it must not raise
    # a second error, or the caller gets an ExceptionGroup of two instead of their own.
    calls: list[SweepProgress] = []

    def progress(report: SweepProgress) -> None:
        calls.append(report)
        raise Stop("stopped")

    sweep = SweepOutcomes(db, [], progress, max_worker_restarts=0)
    sweep._writer = object()  # type: ignore[assignment]  # it reports once it has a writer
    with pytest.raises(Stop):
        sweep._report()
    sweep._report()
    assert len(calls) == 1


@POSTGRES_ROUND_IN_CI
async def test_a_stopped_sweep_resumed_equals_one_never_stopped(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(Stop):
        await run_sweep(
            db, "sma_cross", SMALL_GRID, SMALL_DATA, strategy_id=strategy_id, workers=1,
            progress=stop_after(3),
        )  # fmt: skip
    (stopped,) = await db.sweeps.list()
    assert stopped.sweep.status == "interrupted"
    assert stopped.counts.get("completed", 0) < 12
    completed_before = {
        b.id: b.updated_at
        for b in await db.backtests.list(sweep_id=stopped.sweep.id, status="completed")
    }

    result = await run_sweep(
        db, "sma_cross", SMALL_GRID, SMALL_DATA, strategy_id=strategy_id,
        resume=stopped.sweep.id,
    )  # fmt: skip

    assert (result.sweep_id, result.completed, result.failed) == (stopped.sweep.id, 12, 0)
    assert result.skipped == len(completed_before)
    for backtest_id, updated_at in completed_before.items():  # never run again
        assert (await db.backtests.get(backtest_id)).updated_at == updated_at
    assert (await db.sweeps.get(stopped.sweep.id)).status == "completed"
    reference = await uninterrupted(db, strategy_id, SMALL_GRID, SMALL_DATA)
    assert_same_sweep(await outcomes(db, result.sweep_id), await outcomes(db, reference))
    assert await orphans(db) == {"unfinished backtests": 0, "fills of unfinished": 0}


@POSTGRES_ROUND_IN_CI
async def test_resuming_a_completed_sweep_runs_nothing(db: Database, strategy_id: int) -> None:
    first = await run_sweep(db, "sma_cross", SMALL_GRID, SMALL_DATA, strategy_id=strategy_id)
    again = await run_sweep(
        db, "sma_cross", SMALL_GRID, SMALL_DATA, strategy_id=strategy_id, resume=first.sweep_id
    )
    assert (again.skipped, again.completed, again.fills_stored) == (12, 12, 0)
    assert again.backtest_ids == first.backtest_ids


@POSTGRES_ROUND_IN_CI
async def test_a_data_set_whose_content_changed_is_refused_on_resume(
    db: Database, strategy_id: int
) -> None:
    first = await run_sweep(db, "sma_cross", SMALL_GRID, SMALL_DATA, strategy_id=strategy_id)
    changed = {"A": SMALL_DATA["A"], "B": synthetic_bars(400, seed=3)}
    with pytest.raises(InvalidValue, match="the data set B .* changed since sweep"):
        await run_sweep(
            db, "sma_cross", SMALL_GRID, changed, strategy_id=strategy_id, resume=first.sweep_id
        )


@POSTGRES_ROUND_IN_CI
async def test_other_options_or_configs_are_not_the_sweep_to_resume(
    db: Database, strategy_id: int
) -> None:
    first = await run_sweep(db, "sma_cross", SMALL_GRID, SMALL_DATA, strategy_id=strategy_id)
    with pytest.raises(InvalidValue, match="commission"):
        await run_sweep(
            db, "sma_cross", SMALL_GRID, SMALL_DATA, strategy_id=strategy_id, commission=0.001,
            resume=first.sweep_id,
        )  # fmt: skip
    with pytest.raises(InvalidValue, match="not among these configs"):
        await run_sweep(
            db, "sma_cross", {"fast": [2], "slow": [5]}, SMALL_DATA, strategy_id=strategy_id,
            resume=first.sweep_id,
        )  # fmt: skip
    with pytest.raises(NotFound, match="sweep"):
        await run_sweep(
            db, "sma_cross", SMALL_GRID, SMALL_DATA, strategy_id=strategy_id, resume=999
        )


def start_child(url: str, *scheduler: str) -> subprocess.Popen[str]:
    """resume_child's sweep on `url` (its coordinator, given a Dask scheduler's address)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backtest.resume_child", url, *scheduler],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal gives a script
    )  # fmt: skip


def stop_near_the_middle(child: subprocess.Popen[str], how: Callable[[int], None]) -> None:
    """Wait until about half the child's jobs are done, then stop it with `how(pid)`."""
    assert child.stdout is not None
    processes: list[psutil.Process] = []
    try:
        for line in child.stdout:
            if line.startswith("progress ") and int(line.split()[1]) >= resume_child.JOBS // 2:
                # Listed here, not at every line: a listing takes milliseconds on a loaded
                # machine, and one per line could leave the reading so far behind the sweep
                # that it had ended before the stop came.
                processes = psutil.Process(child.pid).children(recursive=True)
                how(child.pid)
                break
        else:
            pytest.fail(f"the sweep ended before its middle: {child.communicate()}")
        child.communicate(timeout=60)
    finally:
        reap(child)
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert alive == []


def sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)  # the main process alone: its workers end with it


def ctrl_c(pid: int) -> None:
    os.killpg(pid, signal.SIGINT)  # what Ctrl-C in a terminal sends


async def resume_and_compare(db: Database, stopped_as: str) -> None:
    (stopped,) = await db.sweeps.list()
    assert stopped.sweep.status == stopped_as
    assert 0 < stopped.counts.get("completed", 0) < resume_child.JOBS
    data = resume_child.data()
    result = await run_sweep(
        db, "sma_cross", resume_child.GRID, data, strategy_id=stopped.sweep.strategy_id,
        workers=2, resume=stopped.sweep.id,
    )  # fmt: skip
    assert result.completed == resume_child.JOBS
    assert 0 < result.skipped < resume_child.JOBS
    reference = await uninterrupted(db, stopped.sweep.strategy_id, resume_child.GRID, data)
    assert_same_sweep(await outcomes(db, stopped.sweep.id), await outcomes(db, reference))
    assert await orphans(db) == {"unfinished backtests": 0, "fills of unfinished": 0}


@pytest.mark.slow
async def test_a_sweep_of_200_sigkilled_mid_way_and_resumed_equals_one_never_stopped(
    db: Database, database_url: str
) -> None:
    stop_near_the_middle(start_child(database_url), sigkill)
    await resume_and_compare(db, stopped_as="running")


@pytest.mark.slow
async def test_a_sweep_of_200_stopped_by_ctrl_c_and_resumed_equals_one_never_stopped(
    db: Database, database_url: str
) -> None:
    stop_near_the_middle(start_child(database_url), ctrl_c)
    await resume_and_compare(db, stopped_as="interrupted")
