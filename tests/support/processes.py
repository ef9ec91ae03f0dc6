"""Ending a test's child process group whatever happened, and closing its pipes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import psutil


def reap(child: subprocess.Popen[str]) -> None:
    """SIGKILL `child`'s process group if it is still running, wait for it, close its pipes."""
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    for pipe in (child.stdout, child.stderr):
        if pipe is not None:
            pipe.close()


def sweep_workers(pid: int) -> list[psutil.Process]:
    """The sweep worker processes under process `pid`: spawned ones, and the ones forked
    from multiprocessing's fork server (which `quantflow` warms for them), not the server."""

    def command(process: psutil.Process) -> str:
        return " ".join(process.cmdline())

    workers = []
    for process in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = process.parent()
            forked = parent is not None and "multiprocessing.forkserver" in command(parent)
            if "multiprocessing.spawn" in command(process) or forked:
                workers.append(process)
    return workers
