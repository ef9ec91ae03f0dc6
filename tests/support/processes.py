"""Ending a test's child process group whatever happened, and closing its pipes."""

from __future__ import annotations

import os
import signal
import subprocess


def reap(child: subprocess.Popen[str]) -> None:
    """SIGKILL `child`'s process group if it is still running, wait for it, close its pipes."""
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    for pipe in (child.stdout, child.stderr):
        if pipe is not None:
            pipe.close()
