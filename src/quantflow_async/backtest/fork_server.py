"""A fork server warmed while a command is still starting, for the sweep's worker processes.

Spawning a worker costs a new interpreter and the engine's imports, a quarter of a second
each, after the main process has read the data. Started at the beginning of a command,
multiprocessing's fork server imports the worker's modules while the main process imports
and reads its own; the sweep's workers are then forked from it, ready to run. It runs no
thread of ours, so its forks copy no lock one of our threads holds.

What a forked worker starts with is what a spawned one would have: the main process's
path, working directory and environment (the server is started from it), SIGINT ignored,
and a fresh seed for numpy's global generator (worker.py). The server imports with a
safe path (PYTHONSAFEPATH): `python -c` would put the working directory first, and a
`queue.py` there would shadow the standard library in every worker.

The server lives until the process that started it exits, with the environment it was
started with, so only a process started for the one command (the `quantflow` program) warms
it; a program that calls the library keeps the default, "spawn".
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
from collections.abc import Iterator, Sequence
from typing import Final

from quantflow_async.worker_signals import stop_signals_ignored

log = logging.getLogger(__name__)

WORKER_MODULE: Final = "quantflow_async.backtest.worker"
_SAFE_PATH: Final = "PYTHONSAFEPATH"
_SAFE_PATH_OURS: Final = "QUANTFLOW_FORK_SERVER_SAFE_PATH"
"""Set beside PYTHONSAFEPATH when we set it: the server, importing this module first, takes
both away again, so its workers' environment is the main process's."""


def warm_fork_server(modules: Sequence[str] = (WORKER_MODULE,)) -> str:
    """Start the fork server now, importing `modules` (the sweep worker's), and return the
    start method a sweep should use: "forkserver", or "spawn" where the platform has no
    fork server (Windows) or it cannot start (a temporary folder whose socket path is too
    long). Returns at once: the server imports in its own process."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    multiprocessing.set_forkserver_preload([__name__, *modules])
    try:
        with _server_start():
            multiprocessing.forkserver.ensure_running()
    except OSError as exc:
        log.warning("sweep: no fork server (%s); its workers are spawned", exc)
        return "spawn"
    return "forkserver"


@contextlib.contextmanager
def _server_start() -> Iterator[None]:
    """The server starts with a safe import path and SIGINT and SIGTERM ignored, which it
    keeps for the workers it forks, as spawned workers start (a stop is the main process's to
    handle). From a thread other than the main one the workers still ignore them from their
    first instruction of ours (worker.py), a moment later than spawned ones."""
    ours = _SAFE_PATH not in os.environ
    if ours:
        os.environ[_SAFE_PATH] = os.environ[_SAFE_PATH_OURS] = "1"
    try:
        with stop_signals_ignored():
            yield
    finally:
        if ours:
            del os.environ[_SAFE_PATH], os.environ[_SAFE_PATH_OURS]


if os.environ.pop(_SAFE_PATH_OURS, None) is not None:  # in the fork server, imported first
    os.environ.pop(_SAFE_PATH, None)
