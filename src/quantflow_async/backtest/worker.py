"""What runs in a sweep's worker process: backtests in, fills and outcomes out, by two queues.

A worker takes jobs from the task queue until it finds None, runs each in the engine, makes
the fills itself (their driver rows are built here, on this core, not in the writer's
process) and sends them in chunks, then the metrics and results. The outbox is bounded: a
full one blocks the worker, which is the sweep's back-pressure, and the time spent blocked
is measured. SIGINT is ignored: the main process owns the shutdown and terminates workers.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import time
from collections.abc import Mapping
from multiprocessing.queues import Queue
from typing import Any, Final, NamedTuple

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.conversion import (
    RunSpec,
    error_document,
    fill_chunks,
    results_document,
)

POLL_SECONDS: Final = 0.5
"""How often a blocked worker checks that the main process is still alive."""


class Job(NamedTuple):
    """One backtest for a worker: the stored row's ids, the spec and the data set's key."""

    backtest_id: int
    strategy_id: int
    spec: RunSpec
    data: str


# Messages a worker sends, as plain tuples (kind first):
#   ("started", worker, backtest_id)
#   ("fills", worker, backtest_id, [Fill, ...])
#   ("completed", worker, backtest_id, metrics, results)
#   ("failed", worker, backtest_id, error document)
#   ("exit", worker, seconds blocked on a full outbox, seconds busy running jobs)
Message = tuple[Any, ...]


class _Outbox:
    """The bounded queue to the main process, timing every wait for space."""

    def __init__(self, messages: Queue[Message], parent: int) -> None:
        self._messages = messages
        self._parent = parent
        self.blocked = 0.0

    def put(self, message: Message) -> None:
        try:
            self._messages.put_nowait(message)
            return
        except queue.Full:
            pass
        started = time.perf_counter()
        try:
            while True:
                try:
                    self._messages.put(message, timeout=POLL_SECONDS)
                    return
                except queue.Full:
                    _exit_if_orphaned(self._parent)
        finally:
            self.blocked += time.perf_counter() - started


def work(
    index: int,
    jobs: Queue[Job | None],
    messages: Queue[Message],
    datasets_file: str,
    chunk_size: int,
    parent: int,
) -> None:
    """A worker process's main function: run jobs until None, then report and return.

    The data sets come in a pickle file the main process wrote: not as arguments of the
    process, which spawn writes down a pipe that would block the main process for good if
    this process died before reading it all.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(datasets_file, "rb") as file:
        datasets: Mapping[str, Bars] = pickle.load(file)  # noqa: S301 - our own file
    outbox = _Outbox(messages, parent)
    busy = 0.0
    while (job := _next_job(jobs, parent)) is not None:
        started = time.perf_counter()
        outbox.put(("started", index, job.backtest_id))
        _run(index, job, datasets[job.data], chunk_size, outbox)
        busy += time.perf_counter() - started
    outbox.put(("exit", index, outbox.blocked, busy))
    # The queue's feeder thread must hand every message to the pipe before the process ends.
    messages.close()
    messages.join_thread()


def _run(index: int, job: Job, bars: Bars, chunk_size: int, outbox: _Outbox) -> None:
    try:
        result = job.spec.run(bars)
    except Exception as exc:  # the strategy's error becomes the failed backtest's results
        outbox.put(("failed", index, job.backtest_id, error_document(exc)))
        return
    for chunk in fill_chunks(
        result, strategy_id=job.strategy_id, backtest_id=job.backtest_id, size=chunk_size
    ):
        outbox.put(("fills", index, job.backtest_id, chunk))
    outbox.put(("completed", index, job.backtest_id, result.metrics, results_document(result)))


def _next_job(jobs: Queue[Job | None], parent: int) -> Job | None:
    while True:
        try:
            return jobs.get(timeout=POLL_SECONDS)
        except queue.Empty:
            _exit_if_orphaned(parent)


def _exit_if_orphaned(parent: int) -> None:
    # The main process died without stopping us (SIGKILL): nobody reads our messages.
    if os.getppid() != parent:
        os._exit(1)
