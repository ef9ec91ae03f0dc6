"""The SQLite writer's worker process outliving its parent: a program killed while its writer
starts (or before a reply) leaves a worker whose answers have no reader. It ends quietly: its
stderr is the program's own, where a traceback would read as the program's failure."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from quantflow_async.ingest.sqlite_worker import MAIN
from quantflow_async.ingest.sqlite_worker_main import PAUSE_AT_START_ENV


def test_a_worker_whose_parent_stopped_reading_before_it_said_ok_ends_without_a_word(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pause"
    marker.touch()  # the worker stops itself (SIGSTOP) before it opens the database
    arguments = [str(tmp_path / "db.sqlite3"), "0", "", "", "", "0"]
    worker = subprocess.Popen(
        [sys.executable, "-I", str(MAIN), *arguments],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={PAUSE_AT_START_ENV: str(marker)},
    )  # fmt: skip
    try:
        while psutil.Process(worker.pid).status() != psutil.STATUS_STOPPED:
            time.sleep(0.01)  # the test's timeout bounds this loop
        assert worker.stdout is not None
        worker.stdout.close()  # as the parent's end is closed when it is killed
        worker.send_signal(signal.SIGCONT)
        _, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert stderr == b""
    assert worker.returncode == 0
