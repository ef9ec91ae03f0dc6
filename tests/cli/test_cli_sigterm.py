"""SIGTERM, which `timeout`, `kill`, `docker stop` and systemd send, stops a command as Ctrl-C
does: a real SIGTERM to the command's process only, as `kill PID` sends it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from quantflow_async import Database, Settings
from tests.cli.test_cli_backtest import write_bars
from tests.conftest import make_fill
from tests.support.databases import migrated_sqlite
from tests.support.processes import reap

TERMINATED = 128 + signal.SIGTERM


def migrated(folder: Path) -> str:
    return migrated_sqlite(folder / "db.sqlite3")


def statuses(url: str) -> Counter[str]:
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as connection:
        return Counter(s for (s,) in connection.execute("SELECT status FROM backtests"))


def trades(url: str) -> int:
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as connection:
        (count,) = connection.execute("SELECT count(*) FROM trades").fetchone()
    return int(count)


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    return subprocess.Popen(
        [sys.executable, "-m", "quantflow_async.cli", *args],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def terminate(child: subprocess.Popen[str], ready: object) -> tuple[int, str]:
    """SIGTERM to `child` alone once `ready()` is true; its exit status and stderr."""
    try:
        while not ready():  # type: ignore[operator]
            assert child.poll() is None, child.communicate()
            time.sleep(0.005)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        reap(child)
    return child.returncode, stderr


def assert_terminated(status: int, stderr: str) -> None:
    assert status == TERMINATED, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == "quantflow: error: terminated"


@pytest.mark.slow  # a sweep in a new process, stopped part way
def test_sigterm_mid_sweep_marks_the_unfinished_cancelled_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    url = migrated(tmp_path)
    long = [write_bars(tmp_path / f"long{i}.csv", 40_000) for i in range(2)]
    files = [arg for path in long for arg in ("--data", str(path))]
    child = start(
        tmp_path, "sweep", "sma_cross", *files, "--database-url", url,
        "--grid", '{"fast": [2, 3, 4, 5, 6, 7], "slow": [8, 9, 10, 11, 12, 13]}',
    )  # fmt: skip
    workers: list[psutil.Process] = []

    def ready() -> bool:
        workers[:] = psutil.Process(child.pid).children(recursive=True)
        return trades(url) > 0

    status, stderr = terminate(child, ready)
    assert_terminated(status, stderr)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
    found = statuses(url)
    assert set(found) <= {"completed", "cancelled"} and found["cancelled"] >= 1, found
    assert sum(found.values()) == 72


@pytest.mark.slow  # a sweep in a new process, stopped part way
def test_sigterm_to_the_whole_process_group_stops_a_sweep_as_one_to_its_main_process(
    tmp_path: Path,
) -> None:
    """What `timeout` and systemd do: the workers and the writer's process get it too, and
    leave the stop to the main process; nothing is retried or replaced on the way."""
    url = migrated(tmp_path)
    long = [write_bars(tmp_path / f"long{i}.csv", 40_000) for i in range(2)]
    files = [arg for path in long for arg in ("--data", str(path))]
    child = start(
        tmp_path, "sweep", "sma_cross", *files, "--database-url", url, "-v",
        "--grid", '{"fast": [2, 3, 4, 5, 6, 7], "slow": [8, 9, 10, 11, 12, 13]}',
    )  # fmt: skip
    workers: list[psutil.Process] = []
    try:
        while trades(url) == 0:
            assert child.poll() is None, child.communicate()
            workers[:] = psutil.Process(child.pid).children(recursive=True)
            time.sleep(0.005)
        os.killpg(child.pid, signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        reap(child)
    assert_terminated(child.returncode, stderr)
    for alarm in ("retrying", "replaced", "Unknown child process", "exited with code"):
        assert alarm not in stderr, stderr
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
    found = statuses(url)
    assert set(found) <= {"completed", "cancelled"} and found["cancelled"] >= 1, found


@pytest.mark.slow  # a backtest in a new process, stopped part way
def test_sigterm_mid_backtest_run_leaves_it_cancelled_not_running(tmp_path: Path) -> None:
    url = migrated(tmp_path)
    data = write_bars(tmp_path / "long.csv", 300_000)
    child = start(
        tmp_path, "backtest", "run", "sma_cross", "--data", str(data),
        "--config", '{"fast": 2, "slow": 5}', "--database-url", url,
    )  # fmt: skip
    status, stderr = terminate(child, lambda: statuses(url)["running"] == 1)
    assert_terminated(status, stderr)
    assert statuses(url) == Counter(cancelled=1)


async def test_sigterm_during_an_export_leaves_no_file(tmp_path: Path) -> None:
    url = migrated(tmp_path)
    async with Database(settings=Settings(database_url=url)) as db:
        strategy_id = (await db.strategies.create(name="s")).id
        await db.trades.insert_many([make_fill(strategy_id, n) for n in range(60_000)])
    out = tmp_path / "out"
    out.mkdir()
    child = start(out, "trades", "export", "-o", "t.csv", "--database-url", url)
    status, stderr = terminate(child, lambda: any(out.iterdir()))
    assert_terminated(status, stderr)
    assert list(out.iterdir()) == []
