"""Sweeps: a grid of backtests in worker processes, streaming fills to one writer (SQLite file).

Real processes and real signals: a sweep is cancelled as a program cancels it (its task) and
as a person does (SIGINT to the process group of a script running one).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import psutil
import pytest

from quantflow_async import Database, Settings
from quantflow_async.backtest import (
    Bars,
    StrategyConfigError,
    SweepProgress,
    expand_grid,
    run_backtest,
    run_sweep,
    sweep_outcomes,
    synthetic_bars,
)
from quantflow_async.backtest.spec import RunSpec
from quantflow_async.backtest.sweep import _Workers
from quantflow_async.backtest.sweep_jobs import Grid
from quantflow_async.backtest.worker import Gone, Job
from tests.backtest.sweep_child import (
    BARS,
    GRID,
    Exploding,
    Sleepy,
    dies_mid_message,
    forks_then_dies_mid_message,
    sends_what_does_not_pickle,
)

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"A": synthetic_bars(3_000, seed=1), "B": synthetic_bars(3_000, seed=2)}


@pytest.fixture
async def sqlite_db(migrated_sqlite_url: str) -> Database:
    async with Database(settings=Settings(database_url=migrated_sqlite_url)) as db:
        await db.migrate()
        yield db  # type: ignore[misc]


async def new_strategy(db: Database) -> int:
    return (await db.strategies.create(name="sweep")).id


@functools.cache
def walks(count: int) -> dict[str, Bars]:
    """Two driftless walks of `count` bars, made once: sweeps only read their data."""
    return {f"S{i}": synthetic_bars(count, seed=i, drift=0.0) for i in range(2)}


_FILLS: dict[tuple[object, ...], tuple[Bars, int]] = {}


def expected_fills(strategy: object, config: dict[str, object], bars: Bars) -> int:
    """How many fills the engine makes of `config` on `bars`, run once whichever test asks."""
    key = (strategy, tuple(sorted(config.items())), id(bars))
    if key not in _FILLS:
        run = run_backtest(strategy, bars, config)  # type: ignore[arg-type]
        _FILLS[key] = (bars, len(run.executions))  # held, so no other bars can take their id
    return _FILLS[key][1]


def sweep_processes() -> list[psutil.Process]:
    """Worker and SQLite-writer processes under this one (not multiprocessing's tracker)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "multiprocessing.spawn" in command or "sqlite_worker_main" in command:
            found.append(child)
    return found


def test_a_grid_of_lists_is_every_combination_in_key_order() -> None:
    assert expand_grid({"fast": [5, 10], "slow": [20, 50]}) == [
        {"fast": 5, "slow": 20},
        {"fast": 5, "slow": 50},
        {"fast": 10, "slow": 20},
        {"fast": 10, "slow": 50},
    ]


def test_a_grid_may_give_its_values_and_configs_as_any_iterable() -> None:
    assert expand_grid({"fast": (n for n in (5, 10)), "slow": range(20, 21)}) == [
        {"fast": 5, "slow": 20},
        {"fast": 10, "slow": 20},
    ]
    assert expand_grid(iter([{"fast": 5}, {"fast": 10}])) == [{"fast": 5}, {"fast": 10}]


async def test_every_config_on_every_data_set_is_a_completed_backtest_with_all_its_fills(
    sqlite_db: Database,
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    reports: list[SweepProgress] = []
    grid = {"fast": [3, 5], "slow": [10, 20]}
    result = await run_sweep(
        sqlite_db, "sma_cross", grid, SMALL, strategy_id=strategy_id, workers=2,
        progress=reports.append,
    )  # fmt: skip
    assert (result.completed, result.failed, len(result.backtest_ids)) == (8, 0, 8)
    total = 0
    for backtest_id in result.backtest_ids:
        backtest = await sqlite_db.backtests.get(backtest_id)
        config = dict(backtest.config["parameters"])
        bars = SMALL[backtest.config["symbol"]]
        count = await sqlite_db.trades.count(backtest_id=backtest_id)
        assert backtest.status == "completed"
        assert count == expected_fills("sma_cross", config, bars) > 0
        assert backtest.metrics == run_backtest("sma_cross", bars, config).metrics
        total += count
    assert result.fills_stored == total
    assert reports[-1] == SweepProgress(
        total=8, done=8, failed=0, fills_stored=total, sweep_id=result.sweep_id
    )
    assert 0 <= result.blocked_share < 1


async def test_outcomes_left_once_every_worker_has_exited_are_recorded_without_waiting(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outcomes wait up to RECORD_EVERY_SECONDS to be recorded together; once the workers are
    # gone no other can join them, and the sweep ends without the wait.
    monkeypatch.setattr(sweep_outcomes, "RECORD_EVERY_SECONDS", 3600.0)
    strategy_id = await new_strategy(sqlite_db)
    with anyio.fail_after(60):
        result = await run_sweep(
            sqlite_db, "sma_cross", {"fast": [3], "slow": [10]}, SMALL,
            strategy_id=strategy_id, workers=2,
        )  # fmt: skip
    assert (result.completed, result.failed) == (2, 0)


async def test_a_failing_backtest_is_marked_failed_and_the_others_complete(
    sqlite_db: Database,
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    grid = [{"explode_at": 0}, {"explode_at": 500}, {"explode_at": 0, "fast": 3}]
    result = await run_sweep(
        sqlite_db, Exploding, grid, SMALL["A"], strategy_id=strategy_id, workers=2
    )
    assert (result.completed, result.failed) == (2, 1)
    backtests = [await sqlite_db.backtests.get(i) for i in result.backtest_ids]
    assert [b.status for b in backtests] == ["completed", "failed", "completed"]
    assert backtests[1].results is not None
    assert backtests[1].results["error"]["message"] == "exploded on bar 500"
    assert await sqlite_db.trades.count(backtest_id=backtests[1].id) == 0
    for backtest, config in ((backtests[0], grid[0]), (backtests[2], grid[2])):
        count = await sqlite_db.trades.count(backtest_id=backtest.id)
        assert count == expected_fills(Exploding, config, SMALL["A"])


async def test_a_bad_config_anywhere_in_the_grid_stores_nothing(sqlite_db: Database) -> None:
    strategy_id = await new_strategy(sqlite_db)
    with pytest.raises(StrategyConfigError, match="slow: must be > fast"):
        await run_sweep(
            sqlite_db, "sma_cross", {"fast": [5, 30], "slow": [20]}, SMALL, strategy_id=strategy_id
        )
    assert await sqlite_db.backtests.list() == []


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({}, "grid: {} names no parameter, so it would only run the defaults; a grid gives "),
        ({"fast": [5], "slow": []}, "grid: the parameter 'slow' has no value; a grid gives "),
        ([], "grid: the list of configs is empty"),
        (iter([]), "grid: the list of configs is empty"),
        ({"fast": (n for n in ())}, "grid: the parameter 'fast' has no value; a grid gives "),
    ],
    ids=[
        "no parameter",
        "a parameter without values",
        "no config",
        "an empty iterator",
        "an empty generator of values",
    ],
)
async def test_a_grid_without_a_config_to_run_is_refused_and_stores_nothing(
    sqlite_db: Database, grid: Grid, message: str
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    with pytest.raises(StrategyConfigError, match=f"^{re.escape(message)}"):
        await run_sweep(sqlite_db, "sma_cross", grid, SMALL, strategy_id=strategy_id)
    assert await sqlite_db.backtests.list() == []
    assert await sqlite_db.sweeps.list() == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("workers", 0, "workers: must be an int >= 1, got 0"),
        ("workers", True, "workers: must be an int >= 1, got True"),
        ("chunk_size", 0, "chunk_size: must be an int >= 1, got 0"),
        ("start_method", "fork", "start_method: must be one of spawn, forkserver, got 'fork'"),
    ],
)
async def test_a_bad_sweep_option_is_named_and_stores_nothing(
    sqlite_db: Database, option: str, value: object, message: str
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    with pytest.raises(StrategyConfigError, match=f"^{message}$"):
        await run_sweep(
            sqlite_db, "sma_cross", GRID, SMALL, strategy_id=strategy_id, **{option: value}
        )
    assert await sqlite_db.backtests.list() == []


@pytest.mark.slow  # long backtests, so that the cancel lands inside them
async def test_cancelling_the_sweep_task_stops_the_workers_and_marks_the_rest_cancelled(
    sqlite_db: Database,
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    data = walks(BARS)
    seen: set[int] = set()
    stored_before_cancel = 0

    async with anyio.create_task_group() as tasks:

        def progress(report: SweepProgress) -> None:
            nonlocal stored_before_cancel
            seen.update(p.pid for p in sweep_processes())
            if report.done >= 1 and report.fills_stored:
                stored_before_cancel = report.fills_stored
                tasks.cancel_scope.cancel()

        async def sweep() -> None:
            await run_sweep(
                sqlite_db, "sma_cross", GRID, data, strategy_id=strategy_id, workers=2,
                progress=progress,
            )  # fmt: skip

        tasks.start_soon(sweep)

    statuses = Counter(b.status for b in await sqlite_db.backtests.list())
    assert set(statuses) == {"completed", "cancelled"}, statuses
    assert statuses["completed"] >= 1
    assert await sqlite_db.trades.count() >= stored_before_cancel > 0
    assert len(seen) >= 3  # two workers and the writer's SQLite process were seen
    assert not [pid for pid in seen if psutil.pid_exists(pid)]


def worker_processes() -> list[psutil.Process]:
    """The sweep's workers: spawned by this process, or forked by multiprocessing's
    forkserver (which stays, as multiprocessing keeps it for the next sweep)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            command = " ".join(process.cmdline())
            forked = "multiprocessing.forkserver" in command and process.ppid() != os.getpid()
            if "multiprocessing.spawn" in command or forked:
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


# Long backtests, so that the kill lands inside one; test_sweep_workers.py kills by default.
@pytest.mark.slow
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
async def test_a_worker_killed_mid_sweep_fails_its_backtest_and_the_other_runs_the_rest(
    sqlite_db: Database, start_method: str
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    data = walks(BARS // 2)
    grid = {"fast": [2, 3], "slow": [5]}  # 4 backtests: the killed worker's and the rest
    killed: list[int] = []

    def progress(report: SweepProgress) -> None:
        if not killed and report.fills_stored:
            victim = worker_processes()[0]
            victim.kill()  # SIGKILL: what the kernel's out-of-memory killer sends
            killed.append(victim.pid)

    result = await run_sweep(
        sqlite_db, "sma_cross", grid, data, strategy_id=strategy_id, workers=2,
        progress=progress, start_method=start_method,
    )  # fmt: skip
    assert killed
    backtests = await sqlite_db.backtests.list()
    failed = [b for b in backtests if b.status == "failed"]
    # The killed worker was running a backtest, unless it died in the instant between taking
    # a job and saying it started it: then that job went to the other worker too.
    assert len(failed) <= 1
    for backtest in failed:
        assert backtest.results is not None
        assert backtest.results["error"]["message"] == "the worker process exited with code -9"
    everything = len(expand_grid(grid)) * len(data)
    assert result.completed == len(backtests) - len(failed) == everything - len(failed)
    for backtest in backtests:
        if backtest.status == "completed":
            config = dict(backtest.config["parameters"])
            full = expected_fills("sma_cross", config, data[backtest.config["symbol"]])
            assert await sqlite_db.trades.count(backtest_id=backtest.id) == full
    assert worker_processes() == []


async def test_a_dead_workers_unstarted_job_is_run_by_the_worker_left(
    sqlite_db: Database, tmp_path: Path
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    pid_file = tmp_path / "first.pid"
    # Worker 0 takes the first job, which sleeps, and one more ahead of time; worker 1 runs
    # the two others and then waits: worker 0 might die and give its job back.
    grid = [{"sleep": 60.0, "pid_file": str(pid_file)}, {}, {}, {"fast": 3}]
    killed: list[int] = []

    def progress(report: SweepProgress) -> None:
        if not killed and report.done >= 2:
            # Worker 1 can finish its two jobs before worker 0, still starting, reaches the first.
            killed.append(_pid_once_written(pid_file))
            os.kill(killed[0], signal.SIGKILL)

    result = await run_sweep(
        sqlite_db, Sleepy, grid, SMALL["A"], strategy_id=strategy_id, workers=2,
        progress=progress,
    )  # fmt: skip
    assert killed
    backtests = [await sqlite_db.backtests.get(i) for i in result.backtest_ids]
    assert [b.status for b in backtests] == ["failed", "completed", "completed", "completed"]
    assert backtests[0].results is not None
    assert backtests[0].results["error"]["message"] == "the worker process exited with code -9"
    for backtest, config in zip(backtests[1:], grid[1:], strict=True):
        count = await sqlite_db.trades.count(backtest_id=backtest.id)
        assert count == expected_fills(Sleepy, config, SMALL["A"])


def _pid_once_written(pid_file: Path, seconds: float = 60.0) -> int:
    deadline = time.monotonic() + seconds
    while not pid_file.exists():
        assert time.monotonic() < deadline, f"no worker wrote {pid_file} in {seconds} s"
        time.sleep(0.02)
    return int(pid_file.read_text())


@pytest.mark.slow  # the main process is kept busy for seconds, with each start method
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
async def test_a_main_process_busy_for_seconds_keeps_every_worker(
    sqlite_db: Database, start_method: str
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    calls = 0

    def progress(report: SweepProgress) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            time.sleep(2)  # the loop stalls: outboxes fill, workers wait for their next job

    result = await run_sweep(
        sqlite_db, "sma_cross", GRID, SMALL, strategy_id=strategy_id, workers=2,
        progress=progress, start_method=start_method, chunk_size=50,
    )  # fmt: skip
    assert (result.completed, result.failed) == (len(result.backtest_ids), 0)


@pytest.mark.parametrize(
    ("worker", "exit_code"),
    [(dies_mid_message, 9), (forks_then_dies_mid_message, 9), (sends_what_does_not_pickle, 1)],
    ids=[
        "dead halfway through a message",
        "dead halfway through a message, a fork of it holding the pipe",
        "a message that does not pickle",
    ],
)
def test_a_worker_that_cannot_finish_a_message_is_seen_gone_not_waited_for(
    tmp_path: Path, worker: object, exit_code: int
) -> None:
    job = Job(1, 1, RunSpec.of("sma_cross", {}), "A")
    context = multiprocessing.get_context("spawn")
    pool = _Workers(context, 1, tmp_path / "unused", 2000, [job], target=worker)  # type: ignore[arg-type]
    try:
        pool.start()
        received: list[tuple[object, ...]] = []
        while Gone(0) not in received:  # the test's timeout bounds this loop
            received += pool.receive()
        assert received == [Gone(0)]
        assert pool.exit_code(0) == exit_code
    finally:
        pool.stop()
        fork = tmp_path / "unused.fork"
        if fork.exists():
            os.kill(int(fork.read_text()), signal.SIGKILL)
    assert not pool.processes[0].is_alive()


@pytest.mark.slow  # a stopped worker is killed only after its grace period
async def test_cancelling_a_sweep_whose_worker_is_stopped_kills_it_and_returns(
    sqlite_db: Database,
) -> None:
    strategy_id = await new_strategy(sqlite_db)
    data = walks(BARS // 2)
    stopped: list[psutil.Process] = []

    with anyio.CancelScope() as scope:

        def progress(report: SweepProgress) -> None:
            if not stopped and report.fills_stored:
                victim = worker_processes()[0]
                victim.suspend()  # SIGSTOP: a stalled worker, maybe in the middle of a message
                stopped.append(victim)
                scope.cancel()

        await run_sweep(
            sqlite_db, "sma_cross", GRID, data, strategy_id=strategy_id, workers=2,
            progress=progress,
        )  # fmt: skip
    assert stopped
    assert not stopped[0].is_running()
    assert worker_processes() == []
    statuses = Counter(b.status for b in await sqlite_db.backtests.list())
    assert set(statuses) <= {"completed", "cancelled"}, statuses
    assert statuses["cancelled"] >= 1


@pytest.mark.slow  # a sweep of long backtests in a script; `quantflow sweep`'s Ctrl-C is quick
def test_sigint_to_a_script_mid_sweep_keeps_committed_fills_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sweep.sqlite3'}"

    async def migrate() -> None:
        async with Database(url) as db:
            await db.migrate()

    anyio.run(migrate)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.backtest.sweep_child", "sweep", url, "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal gives a script
    )  # fmt: skip
    try:
        assert child.stdout is not None
        reported = 0
        for line in child.stdout:  # the child's timeout (pytest's) bounds this loop
            _, done, fills = line.split()
            if int(done) >= 2 and int(fills) > 0:
                reported = int(fills)
                break
        descendants = psutil.Process(child.pid).children(recursive=True)
        assert len(descendants) >= 3  # two workers, the SQLite writer process, the tracker
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    assert child.returncode in (-signal.SIGINT, 130, 1), stderr
    assert "KeyboardInterrupt" in stderr
    gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert alive == []

    async def check() -> None:
        async with Database(url) as db:
            backtests = await db.backtests.list()
            statuses = Counter(b.status for b in backtests)
            assert set(statuses) == {"completed", "cancelled"}, statuses
            assert statuses["completed"] >= 2
            assert await db.trades.count() >= reported
            bars = walks(BARS)
            for backtest in backtests:
                config = dict(backtest.config["parameters"])
                full = expected_fills("sma_cross", config, bars[backtest.config["symbol"]])
                count = await db.trades.count(backtest_id=backtest.id)
                if backtest.status == "completed":
                    assert count == full
                else:
                    assert count <= full

    anyio.run(check)
