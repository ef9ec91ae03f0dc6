"""What runs in a sweep's worker process: jobs in and fills and outcomes out, on one pipe.

Each worker has a pipe of its own to the main process, never a queue shared with the other
workers: a worker killed in the middle of a message (out of memory, SIGKILL) then cuts only
its own pipe, which the main process sees end, instead of leaving a half-written message and
a lock held in a queue every other worker writes to.

A worker takes a job from its pipe, runs it in the engine, makes the fills itself (their
driver rows are built here, on this core, not in the writer's process) and sends them in
chunks, then the metrics and results; then it takes the next job, until it is sent None. A
thread of the worker does the sending, so the backtest goes on while a chunk is written; it
takes at most `OUTBOX_CHUNKS` messages ahead, and a full outbox blocks the worker, which is
the sweep's back-pressure: the time spent blocked is measured. A job starts only once its
"started" is in the pipe, and the next is taken only once its outcome is: what is in the
pipe reaches the main process even if this one dies, what waits in the outbox does not.
The worker runs the garbage collector less often than the default (collector.py).
SIGINT and SIGTERM are ignored: the main process owns the shutdown and kills workers. A worker
whose main process dies ends at once, even in the middle of a backtest (`_end_with_parent`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Final, NamedTuple

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.conversion import (
    error_document,
    fill_rows,
    results_document,
)
from quantflow_async.backtest.spec import RunSpec
from quantflow_async.collector import collect_less_often, keep_what_is_loaded
from quantflow_async.worker_signals import leave_stop_signals_to_parent

POLL_SECONDS: Final = 0.5
"""How often a waiting worker checks that the main process is still alive."""
OUTBOX_CHUNKS: Final = 2
"""Messages a worker may have waiting to be sent before it blocks."""
WATCH_SECONDS: Final = 0.2
"""How often a worker's watchdog thread looks at the process that started it."""
PR_SET_PDEATHSIG: Final = 1
"""prctl(2)'s option: the signal the kernel sends this process when its parent dies."""


class Job(NamedTuple):
    """One backtest for a worker: the stored row's ids, the spec and the data set's key."""

    backtest_id: int
    strategy_id: int
    spec: RunSpec
    data: str


class SweepFile(NamedTuple):
    """What every worker reads once, from a file: the data sets by key and the jobs."""

    datasets: Mapping[str, Bars]
    jobs: list[Job]


# The messages a worker sends, and the one the main process adds for a worker whose pipe
# ended. The main process sends a worker positions of jobs in the sweep file (or a Job
# itself, for a job added once the workers ran), then None.


class Started(NamedTuple):
    """The worker took the job: if it dies now, its backtest is known to have run."""

    worker: int
    backtest_id: int


class FillRows(NamedTuple):
    """A chunk of a backtest's fills, as their driver rows."""

    worker: int
    backtest_id: int
    rows: list[tuple[Any, ...]]


class Completed(NamedTuple):
    """The backtest ran to its end: every chunk of its fills was sent before this."""

    worker: int
    backtest_id: int
    metrics: dict[str, Any]
    results: dict[str, Any]


class Failed(NamedTuple):
    """The backtest failed (the strategy raised; or its worker died, said by the main
    process, whose own failures name worker -1)."""

    worker: int
    backtest_id: int
    error: dict[str, Any]


class Exited(NamedTuple):
    """The worker was told to stop and did: the seconds it spent blocked on a full outbox,
    and busy running jobs."""

    worker: int
    blocked: float
    busy: float


class Gone(NamedTuple):
    """The worker's pipe ended (the main process says it: the worker died or stopped)."""

    worker: int


Message = Started | FillRows | Completed | Failed | Exited | Gone


class _Outbox:
    """Messages to the main process, sent by a thread; `put` blocks while it is full."""

    def __init__(self, connection: Connection, parent: int) -> None:
        self._connection = connection
        self._parent = parent
        self._waiting: queue.Queue[Message | None] = queue.Queue(maxsize=OUTBOX_CHUNKS)
        self._unsent = 0  # messages put and not yet written to the pipe
        self._sent = threading.Condition()
        self._sender = threading.Thread(target=self._send, name="quantflow-sweep-outbox")
        self._sender.daemon = True
        self._sender.start()
        self.blocked = 0.0

    def put(self, message: Message | None) -> None:
        if message is not None:
            with self._sent:
                self._unsent += 1
        try:
            self._waiting.put_nowait(message)
            return
        except queue.Full:
            pass
        started = time.perf_counter()
        try:
            while True:
                try:
                    self._waiting.put(message, timeout=POLL_SECONDS)
                    return
                except queue.Full:
                    _exit_if_orphaned(self._parent)
        finally:
            self.blocked += time.perf_counter() - started

    def deliver(self) -> None:
        """Wait until every message put so far is written to the pipe (the wait counts as
        blocked)."""
        started = time.perf_counter()
        with self._sent:
            while self._unsent:
                self._sent.wait(POLL_SECONDS)
                _exit_if_orphaned(self._parent)
        self.blocked += time.perf_counter() - started

    def close(self) -> None:
        """Send what is waiting, then stop the thread."""
        self.put(None)
        while self._sender.is_alive():
            self._sender.join(POLL_SECONDS)
            _exit_if_orphaned(self._parent)

    def _send(self) -> None:
        while (message := self._waiting.get()) is not None:
            try:
                self._connection.send(message)
            except OSError:
                # The main process closed its end: it is stopping the sweep, and nobody
                # reads what this worker would still say.
                os._exit(1)
            except Exception:
                # A message that cannot be sent (it does not pickle): the worker ends, so the
                # main process fails the backtest, rather than blocking on a full outbox.
                traceback.print_exc()
                os._exit(1)
            with self._sent:
                self._unsent -= 1
                self._sent.notify_all()


def work(index: int, connection: Connection, sweep_file: str, chunk_size: int) -> None:
    """A worker process's main function: run jobs until None, then report and return.

    The data sets and the jobs come in a pickle file the main process wrote (`SweepFile`),
    and the pipe carries only a job's position in it: nothing large is written down a pipe
    by the main process, so it never waits on a worker that is busy or dead.
    """
    leave_stop_signals_to_parent()
    _end_with_parent()
    reseed_inherited_numpy()
    # The process that started this one: the main process, or multiprocessing's fork server,
    # which ends with the main process. Either way, a new parent means nobody reads us.
    parent = os.getppid()
    with open(sweep_file, "rb") as file:
        sweep: SweepFile = pickle.load(file)  # noqa: S301 - our own file
    keep_what_is_loaded()  # the modules and the data sets, for the worker's whole life
    collect_less_often()
    outbox = _Outbox(connection, parent)
    busy = 0.0
    while (given := _next_job(connection, parent)) is not None:
        # A position in the sweep file, or a job added once the workers ran (a search's)
        job = sweep.jobs[given] if isinstance(given, int) else given
        outbox.put(Started(index, job.backtest_id))
        outbox.deliver()  # if the job kills this process, its backtest is known to have run
        started = time.perf_counter()
        _run(index, job, sweep.datasets[job.data], chunk_size, outbox)
        busy += time.perf_counter() - started
        outbox.deliver()  # its outcome outlives this process, whatever the next job does
    outbox.put(Exited(index, outbox.blocked, busy))
    outbox.close()
    connection.close()


def _run(index: int, job: Job, bars: Bars, chunk_size: int, outbox: _Outbox) -> None:
    try:
        result = job.spec.run(bars)
    except Exception as exc:  # the strategy's error becomes the failed backtest's results
        outbox.put(Failed(index, job.backtest_id, error_document(exc)))
        return
    for rows in fill_rows(
        result, strategy_id=job.strategy_id, backtest_id=job.backtest_id, size=chunk_size
    ):
        outbox.put(FillRows(index, job.backtest_id, rows))
    outbox.put(Completed(index, job.backtest_id, result.metrics, results_document(result)))


def reseed_inherited_numpy() -> None:
    """Seed numpy's global generator afresh if this process was forked with it loaded (from
    a fork server that imported it, as numpy 1.x does on `import numpy`): every worker would
    draw the same numbers from it, where spawned workers each seed their own."""
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed()


def _next_job(connection: Connection, parent: int) -> int | Job | None:
    while not connection.poll(POLL_SECONDS):
        _exit_if_orphaned(parent)
    try:
        given: int | Job | None = connection.recv()
    except (EOFError, OSError):  # the main process closed its end: the sweep is over
        os._exit(1)
    return given


def _end_with_parent() -> None:
    """End this process as soon as the main process dies, whatever its main thread is doing.

    On Linux the kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG; the parent is
    the main process, or multiprocessing's fork server, which ends with it). Everywhere, a
    thread also watches the main process's sentinel (a pipe that ends with it) and the
    parent's pid, which covers a main process that died before prctl took effect.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    watchdog = threading.Thread(
        target=_watch_parent,
        args=(multiprocessing.parent_process(), os.getppid()),
        name="quantflow-sweep-watchdog",
        daemon=True,
    )
    watchdog.start()


def _watch_parent(main: BaseProcess | None, parent: int) -> None:
    while main is None or main.is_alive():
        _exit_if_orphaned(parent)
        if main is None:
            time.sleep(WATCH_SECONDS)
        else:
            main.join(WATCH_SECONDS)  # returns as soon as the main process ends
    os._exit(1)


def _exit_if_orphaned(parent: int) -> None:
    # The main process died without stopping us (SIGKILL): nobody reads our messages.
    if os.getppid() != parent:
        os._exit(1)
