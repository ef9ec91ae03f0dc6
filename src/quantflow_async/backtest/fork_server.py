"""A fork server warmed while a command is still starting, for the sweep's worker processes.

Spawning a worker costs a new interpreter and the engine's imports, a quarter of a second
each, after the main process has read the data. Started at the beginning of a command,
multiprocessing's fork server imports the worker's modules while the main process imports
and reads its own; the sweep's workers are then forked from it, ready to run. It is a
clean single-threaded process, so its forks copy no lock another thread holds.

The server lives until the process that started it exits, and each worker keeps the
environment and working directory the server started with. So only a process started for
the one command (the `quantflow` program) warms it; a program that calls the library and
changes either between sweeps keeps the default, "spawn".
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
from typing import Final

WORKER_MODULE: Final = "quantflow_async.backtest.worker"


def warm_fork_server() -> str:
    """Start the fork server now, importing the worker's module, and return the start
    method a sweep should use: "forkserver", or "spawn" where the platform has no fork
    server (Windows). Returns at once: the server imports in its own process."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    multiprocessing.set_forkserver_preload([WORKER_MODULE])
    multiprocessing.forkserver.ensure_running()
    return "forkserver"
