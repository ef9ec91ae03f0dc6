"""A sweep interrupted twice still exits. The second Ctrl-C (or `timeout -s INT`, which sends
SIGINT to the command and then to its process group) is asyncio.run's KeyboardInterrupt,
raised wherever the main thread is; here it lands, every time, as the sweep starts the thread
that stops its worker processes, the moment that once left an idle thread behind that the
interpreter waited for at exit forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.cli.test_cli_backtest import write_bars
from tests.cli.test_cli_sigterm import migrated, trades
from tests.support.processes import reap

INTERRUPTED = 130

# The command, run as `quantflow` runs it, with a second Ctrl-C that arrives just as a thread
# started by the stopping sweep has started: KeyboardInterrupt raised right after the thread's
# start, in the main task, once asyncio.run has cancelled it (the first Ctrl-C).
SECOND_CTRL_C_AS_A_THREAD_STARTS = """
import asyncio, sys, threading
from quantflow_async.cli.app import main

start = threading.Thread.start
fired = []

def start_then_interrupt(thread):
    start(thread)
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return
    if task is not None and task.cancelling() and not fired:
        fired.append(thread.name)
        print(f"second Ctrl-C as thread {thread.name!r} started", file=sys.stderr, flush=True)
        raise KeyboardInterrupt

threading.Thread.start = start_then_interrupt
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # a sweep in a new process, interrupted part way
def test_a_second_ctrl_c_while_the_workers_stop_still_ends_the_process(tmp_path: Path) -> None:
    url = migrated(tmp_path)
    long = [write_bars(tmp_path / f"long{i}.csv", 40_000) for i in range(2)]
    files = [arg for path in long for arg in ("--data", str(path))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    child = subprocess.Popen(
        [sys.executable, "-c", SECOND_CTRL_C_AS_A_THREAD_STARTS, "sweep", "sma_cross", *files,
         "--database-url", url, "--grid", '{"fast": [2, 3, 4, 5], "slow": [8, 9, 10, 11]}'],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    workers: list[psutil.Process] = []
    try:
        while trades(url) == 0:
            assert child.poll() is None, child.communicate()
            workers[:] = psutil.Process(child.pid).children(recursive=True)
            time.sleep(0.005)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)  # it never ended, once
    finally:
        reap(child)
    assert "second Ctrl-C as thread" in stderr
    assert child.returncode == INTERRUPTED, stderr
    assert stderr.splitlines()[-1] == "quantflow: error: interrupted"
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
