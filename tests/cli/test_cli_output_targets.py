"""Where `-o` may point, for `quantflow trades export` and `quantflow report`: checked before
the database is read; a symbolic link followed (the file it names is replaced, the link
stays); a FIFO or a device written through, never replaced; an existing file keeping its mode;
a name as long as the file system allows."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from quantflow_async import Database
from tests.support.cli import quantflow_process

from ..conftest import make_fill
from .test_cli import assert_one_line_mistake, clean_env
from .test_cli_listings import run, sqlite_only

CURVE = {"time": [1_704_067_200, 1_704_153_600], "equity": [10_000.0, 9_000.0]}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def url(db: Database, strategy_id: int, backtest_id: int) -> str:
    """A database with three trades and a backtest that has a curve to draw."""
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(3)])
    await db.backtests.save_results(backtest_id, results={"equity_curve": CURVE})
    return db.settings.database_url


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "work"
    made.mkdir()
    return made


def export(url: str, output: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(url, "trades", "export", "--format", "csv", "-o", output, cwd=cwd)


def report(url: str, backtest_id: int, output: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(url, "report", str(backtest_id), "-o", output, cwd=cwd)


def trade_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) - 1  # less the header


# -- symbolic links are followed ---------------------------------------------------------------


@sqlite_only
async def test_an_export_through_a_link_replaces_the_file_it_names(url: str, folder: Path) -> None:
    (folder / "runs").mkdir()
    real = folder / "runs" / "2024.csv"
    real.write_text("old\n")
    (folder / "latest.csv").symlink_to("runs/2024.csv")
    done = export(url, "latest.csv", folder)
    assert done.returncode == 0, done.stderr
    assert (folder / "latest.csv").is_symlink()
    assert os.readlink(folder / "latest.csv") == "runs/2024.csv"
    assert trade_lines(real) == 3
    assert sorted(os.listdir(folder / "runs")) == ["2024.csv"]


@sqlite_only
async def test_a_report_through_a_dangling_link_makes_the_file_it_names(
    url: str, folder: Path, backtest_id: int
) -> None:
    (folder / "r.png").symlink_to("made.png")
    done = report(url, backtest_id, "r.png", folder)
    assert done.returncode == 0, done.stderr
    assert (folder / "r.png").is_symlink()
    assert (folder / "made.png").read_bytes().startswith(PNG_SIGNATURE)


@sqlite_only
async def test_a_link_to_a_folder_is_refused_before_the_database_is_read(
    url: str, folder: Path
) -> None:
    (folder / "elsewhere").mkdir()
    (folder / "out.csv").symlink_to("elsewhere")
    done = run(url, "trades", "export", "--backtest", "99", "--format", "csv",
               "-o", "out.csv", cwd=folder)  # fmt: skip
    assert_one_line_mistake(done, "cannot write out.csv: it is a directory")
    assert os.listdir(folder / "elsewhere") == []


@sqlite_only
async def test_a_link_in_a_loop_is_one_line(url: str, folder: Path) -> None:
    (folder / "a.csv").symlink_to("b.csv")
    (folder / "b.csv").symlink_to("a.csv")
    done = export(url, "a.csv", folder)
    assert_one_line_mistake(done, "cannot write a.csv: Too many levels of symbolic links")
    assert sorted(os.listdir(folder)) == ["a.csv", "b.csv"]


# -- FIFOs and devices are written through -----------------------------------------------------


@contextlib.contextmanager
def read_whole(fifo: Path) -> Iterator[list[bytes]]:
    """A reader of `fifo` in a thread; what it read is in the list once the block ends."""
    read: list[bytes] = []

    def drain() -> None:
        with fifo.open("rb") as reading:
            read.append(reading.read())

    reader = threading.Thread(target=drain, daemon=True)  # blocked for good if it was replaced
    reader.start()
    try:
        yield read
    finally:
        reader.join(1)
        if not read:  # the command never opened it: open it once so the reader returns
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)


@sqlite_only
@pytest.mark.parametrize("format", ["csv", "parquet"])
async def test_an_export_into_a_fifo_is_written_through(
    url: str, folder: Path, format: str
) -> None:
    fifo = folder / "pipe"
    os.mkfifo(fifo)
    with read_whole(fifo) as read:
        done = run(url, "trades", "export", "--format", format, "-o", "pipe", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert os.listdir(folder) == ["pipe"]
    if format == "csv":
        assert len(read[0].decode().splitlines()) == 4
    else:
        assert pq.read_table(io.BytesIO(read[0])).num_rows == 3


@sqlite_only
async def test_a_report_into_a_fifo_is_written_through(
    url: str, folder: Path, backtest_id: int
) -> None:
    fifo = folder / "pipe.png"
    os.mkfifo(fifo)
    with read_whole(fifo) as read:
        done = report(url, backtest_id, "pipe.png", folder)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert read[0].startswith(PNG_SIGNATURE)


@sqlite_only
async def test_a_device_is_written_through_and_stays_a_device(url: str, folder: Path) -> None:
    device = folder / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making a device needs CAP_MKNOD")
    done = export(url, "null", folder)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert os.listdir(folder) == ["null"]


@sqlite_only
async def test_a_socket_is_refused_before_the_database_is_read(url: str, folder: Path) -> None:
    path = folder / "s.sock"
    if len(str(path)) > 100:
        pytest.skip("the folder's path is too long for a socket")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        done = run(url, "trades", "export", "--backtest", "99", "--format", "csv",
                   "-o", "s.sock", cwd=folder)  # fmt: skip
    assert_one_line_mistake(done, "cannot write s.sock: it is a socket")
    assert stat.S_ISSOCK(path.lstat().st_mode)


# -- modes ---------------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o666], ids=oct)
async def test_an_export_over_a_file_keeps_its_mode(url: str, folder: Path, mode: int) -> None:
    old = folder / "t.csv"
    old.write_text("old\n")
    old.chmod(mode)
    done = export(url, "t.csv", folder)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(old.stat().st_mode) == mode
    assert trade_lines(old) == 3


@sqlite_only
async def test_a_report_over_a_file_keeps_its_mode(
    url: str, folder: Path, backtest_id: int
) -> None:
    old = folder / "r.png"
    old.write_text("old")
    old.chmod(0o664)
    done = report(url, backtest_id, "r.png", folder)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(old.stat().st_mode) == 0o664
    assert old.read_bytes().startswith(PNG_SIGNATURE)


@sqlite_only
async def test_a_new_file_gets_the_mode_the_umask_gives(url: str, folder: Path) -> None:
    umask = os.umask(0o022)
    try:
        done = export(url, "t.csv", folder)
    finally:
        os.umask(umask)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((folder / "t.csv").stat().st_mode) == 0o644


# -- long names ----------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize("length", [244, 255])
async def test_an_export_to_a_long_name_works(url: str, folder: Path, length: int) -> None:
    name = "t" * (length - 4) + ".csv"
    done = export(url, name, folder)
    assert done.returncode == 0, done.stderr
    assert os.listdir(folder) == [name]
    assert trade_lines(folder / name) == 3


@sqlite_only
async def test_a_report_to_a_long_name_works(url: str, folder: Path, backtest_id: int) -> None:
    name = "é" * 100 + "r" * 50 + ".png"  # 254 bytes in UTF-8
    done = report(url, backtest_id, name, folder)
    assert done.returncode == 0, done.stderr
    assert os.listdir(folder) == [name]


@sqlite_only
async def test_a_name_too_long_is_refused_before_the_database_is_read(
    url: str, folder: Path
) -> None:
    name = "t" * 252 + ".csv"
    done = run(url, "trades", "export", "--backtest", "99", "-o", name, cwd=folder)
    assert_one_line_mistake(done, "File name too long")
    assert os.listdir(folder) == []


# -- checked first -------------------------------------------------------------------------------


@sqlite_only
async def test_an_export_into_a_missing_folder_is_said_before_the_database_is_read(
    url: str, folder: Path
) -> None:
    done = run(url, "trades", "export", "--backtest", "99", "-o", "missing/t.csv", cwd=folder)
    assert_one_line_mistake(done, "cannot write missing/t.csv: No such file or directory")


@sqlite_only
async def test_a_report_into_a_missing_folder_is_said_before_the_database_is_read(
    url: str, folder: Path
) -> None:
    done = report(url, 99, "missing/r.png", folder)
    assert_one_line_mistake(done, "cannot write missing/r.png: No such file or directory")
    assert os.listdir(folder) == []


@sqlite_only
async def test_an_export_to_dev_stdout_goes_into_the_pipe(url: str, folder: Path) -> None:
    # /dev/stdout is the process's own: a new one, whose stdout is a pipe
    done = quantflow_process(
        "trades", "export", "--format", "csv", "-o", "/dev/stdout",
        cwd=folder, env=clean_env(QUANTFLOW_DATABASE_URL=url),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("id,strategy_id,")
    assert len(lines) >= 4  # the header and three trades, then the command's own line
