"""A sweep's temporary folder holds a copy of its data sets. A sweep whose process was killed
cannot remove it, so the next sweep to start does: every folder whose owner lock nobody
holds. A running sweep's folder, a folder still being made and anything that is not a sweep
folder of ours are left alone, and so is a folder whose process forked a child that still
runs."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from quantflow_async import Database
from quantflow_async.backtest import run_sweep, synthetic_bars
from quantflow_async.backtest.sweep_folder import OWNER, prune_dead_sweep_folders, sweep_folder
from tests.support.processes import reap

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no flock")


def sweep_holding_its_folder(
    parent: Path, *, fork_a_child: bool = False, run_a_program: bool = False
) -> subprocess.Popen[str]:
    """A process in a `sweep_folder(parent)` block, waiting, its own process group; it prints
    the folder and the pid of the child it forked or the program it ran, if asked to."""
    code = textwrap.dedent(
        f"""
        import os, subprocess, time
        from pathlib import Path
        from quantflow_async.backtest.sweep_folder import sweep_folder
        with sweep_folder(Path({str(parent)!r})) as folder:
            (folder / "sweep.pickle").write_bytes(b"data")
            child = None
            if {fork_a_child!r}:
                child = os.fork()
                if child == 0:
                    time.sleep(60)
                    os._exit(0)
            if {run_a_program!r}:
                child = subprocess.Popen(["sleep", "60"]).pid
            print(folder, child, flush=True)
            time.sleep(60)
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def end_its_group(process: subprocess.Popen[str]) -> None:
    """reap(), and the children it left in its process group once it died."""
    reap(process)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def prunes_within(parent: Path, seconds: float) -> list[Path]:
    """What a prune removes once something does, or [] after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (removed := prune_dead_sweep_folders(parent)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return removed


def folder_of(process: subprocess.Popen[str]) -> tuple[Path, int | None]:
    assert process.stdout is not None
    folder, child = process.stdout.readline().split()
    return Path(folder), None if child == "None" else int(child)


def killed(process: subprocess.Popen[str], how: signal.Signals = signal.SIGKILL) -> None:
    process.send_signal(how)
    process.wait(timeout=10)


def sweep_folders(parent: Path) -> list[Path]:
    return sorted(parent.glob("quantflow-sweep-*"))


def test_a_folder_is_removed_when_its_block_ends(tmp_path: Path) -> None:
    with sweep_folder(tmp_path) as folder:
        (folder / "sweep.pickle").write_bytes(b"data")
        assert (folder / OWNER).exists()
    assert sweep_folders(tmp_path) == []


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_folder_of_a_killed_sweep_is_removed_by_the_next_start(
    tmp_path: Path, how: signal.Signals
) -> None:
    process = sweep_holding_its_folder(tmp_path)
    try:
        folder, _ = folder_of(process)
        killed(process, how)  # SIGTERM with no handler ends it without its `finally`
        assert folder.is_dir()
        assert prune_dead_sweep_folders(tmp_path) == [folder]
        assert not folder.exists()
    finally:
        reap(process)


def test_the_folder_of_a_running_sweep_is_kept(tmp_path: Path) -> None:
    running = sweep_holding_its_folder(tmp_path)
    dead = sweep_holding_its_folder(tmp_path)
    try:
        running_folder, _ = folder_of(running)
        dead_folder, _ = folder_of(dead)
        killed(dead)
        assert prune_dead_sweep_folders(tmp_path) == [dead_folder]
        assert prune_dead_sweep_folders(tmp_path) == []
        assert sweep_folders(tmp_path) == [running_folder]
    finally:
        reap(running)
        reap(dead)


def test_a_forked_child_that_still_runs_keeps_the_folder(tmp_path: Path) -> None:
    process = sweep_holding_its_folder(tmp_path, fork_a_child=True)
    try:
        folder, child = folder_of(process)
        assert child is not None
        killed(process)
        assert prune_dead_sweep_folders(tmp_path) == []  # the child shares the lock
        os.kill(child, signal.SIGKILL)  # its lock goes with it, however soon it is reaped
        assert prunes_within(tmp_path, 10) == [folder]
    finally:
        end_its_group(process)


def test_a_program_the_sweep_ran_does_not_keep_the_folder(tmp_path: Path) -> None:
    process = sweep_holding_its_folder(tmp_path, run_a_program=True)
    try:
        folder, program = folder_of(process)
        killed(process)
        assert program is not None and psutil.pid_exists(program)
        assert prune_dead_sweep_folders(tmp_path) == [folder]  # the lock is not inherited
    finally:
        end_its_group(process)


def test_a_process_killed_while_it_removes_its_folder_leaves_it_for_the_next(
    tmp_path: Path,
) -> None:
    code = textwrap.dedent(
        f"""
        import os, shutil, signal
        from pathlib import Path
        from quantflow_async.backtest import sweep_folder as module
        def killed_here(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        with module.sweep_folder(Path({str(tmp_path)!r})) as folder:
            (folder / "sweep.pickle").write_bytes(b"data")
            module.shutil = type("Shutil", (), {{"rmtree": staticmethod(killed_here)}})
        """
    )
    died = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False)
    assert died.returncode == -signal.SIGKILL
    (folder,) = sweep_folders(tmp_path)
    assert [entry.name for entry in folder.iterdir()] == [OWNER]  # the data went first
    assert prune_dead_sweep_folders(tmp_path) == [folder]


def test_the_owner_file_is_locked_before_it_has_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pruner finding `owner.lock` not yet locked would remove a sweep's folder as it starts.
    seen: list[list[str]] = []
    lock = fcntl.flock

    def flock(descriptor: int, operation: int) -> None:
        (folder,) = sweep_folders(tmp_path)
        seen.append(sorted(entry.name for entry in folder.iterdir()))
        lock(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with sweep_folder(tmp_path) as folder:
        assert sorted(entry.name for entry in folder.iterdir()) == [OWNER]
    assert seen == [[f".{OWNER}"]]


def test_a_folder_where_flock_is_refused_works_unlocked_and_is_not_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def flock(descriptor: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")  # NFS without its lock daemon

    with monkeypatch.context() as patch:
        patch.setattr(fcntl, "flock", flock)
        with sweep_folder(tmp_path) as folder:
            (folder / "sweep.pickle").write_bytes(b"data")
            patch.undo()
            assert [entry.name for entry in folder.iterdir()] == ["sweep.pickle"]
            assert prune_dead_sweep_folders(tmp_path) == []
            assert (folder / "sweep.pickle").read_bytes() == b"data"
    assert sweep_folders(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_another_users_folder_is_left_alone(tmp_path: Path) -> None:
    theirs = tmp_path / "quantflow-sweep-theirs"
    theirs.mkdir()
    (theirs / OWNER).touch()
    os.chown(theirs, 65534, 65534)
    assert prune_dead_sweep_folders(tmp_path) == []
    assert (theirs / OWNER).exists()


def test_what_is_not_a_dead_sweeps_folder_is_left_alone(tmp_path: Path) -> None:
    being_made = tmp_path / "quantflow-sweep-new"
    being_made.mkdir()  # no owner lock yet
    (being_made / f".{OWNER}").touch()
    a_file = tmp_path / "quantflow-sweep-file"
    a_file.write_text("not a folder")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / OWNER).touch()  # a lock nobody holds, but behind a link
    (elsewhere / "keep").write_text("mine")
    (tmp_path / "quantflow-sweep-link").symlink_to(elsewhere)
    other = tmp_path / "other-folder"
    other.mkdir()
    (other / OWNER).touch()

    assert prune_dead_sweep_folders(tmp_path) == []
    assert being_made.is_dir() and a_file.is_file() and other.is_dir()
    assert (elsewhere / "keep").read_text() == "mine"


def test_a_missing_temporary_folder_prunes_nothing(tmp_path: Path) -> None:
    assert prune_dead_sweep_folders(tmp_path / "missing") == []


async def test_a_sweep_removes_what_a_killed_sweep_left(
    db: Database, strategy_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = sweep_holding_its_folder(tmp_path)
    try:
        left, _ = folder_of(process)
        killed(process)
    finally:
        reap(process)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = await run_sweep(
        db, "sma_cross", {"fast": [2, 3], "slow": [5]}, {"A": synthetic_bars(300, seed=1)},
        strategy_id=strategy_id, workers=1, start_method="spawn",
    )  # fmt: skip
    assert result.completed == 2
    assert not left.exists()
    assert sweep_folders(tmp_path) == []  # its own folder too, once it ended
