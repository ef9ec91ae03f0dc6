"""A sweep's worker processes and the framing of what they send back, one pipe each.

The event loop's side of a sweep (sweep.py) hands jobs out through `WorkerPool` and reads
the workers' messages from it; what runs inside a worker is worker.py.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

from quantflow_async.backtest.worker import Gone, Job, Message, work
from quantflow_async.worker_signals import stop_signals_ignored

log = logging.getLogger(__name__)

RECEIVE_SECONDS: Final = 0.2
"""How long the reading thread waits for a message before the loop checks on the workers."""
READ_BYTES: Final = 1 << 20
"""The most the reading thread takes from one pipe at a time."""
STOP_SECONDS: Final = 5.0
"""How long the exit code of a worker whose pipe ended is waited for."""


class WorkerPool:
    """The worker processes and a pipe to each: jobs out, messages in.

    Jobs are handed out one ahead: a worker gets its first job at the start and its next one
    when it says it started a job. A worker that finishes with nothing to do waits while
    another worker still holds a job it has not started (that worker may die and give it
    back), and is told to stop (None) once no job is left anywhere. A dead worker's place
    can be taken by a new process (`replace`), under the same index.
    """

    def __init__(
        self,
        context: BaseContext,
        count: int,
        sweep_file: Path,
        chunk_size: int,
        jobs: Sequence[Job],
        target: Callable[..., None] = work,
        *,
        open_ended: bool = False,
    ) -> None:
        self.count = count
        self.jobs = list(jobs)
        self.open_ended = open_ended
        self._in_file = len(self.jobs)  # jobs added later travel down the pipe themselves
        self.pending: deque[int] = deque(range(len(jobs)))  # positions in `jobs`
        self.restarts = 0
        self._context = context
        self._worker_args = (str(sweep_file), chunk_size)
        self._target = target
        self.processes: list[BaseProcess] = []
        self._connections: list[Connection] = []
        self._their_ends: list[Connection] = []
        for index in range(count):
            process, ours, theirs = self._new_worker(index)
            self.processes.append(process)
            self._connections.append(ours)
            self._their_ends.append(theirs)
        self._replaced: list[BaseProcess] = []  # dead, or past waiting for: reaped at stop
        self._sent: list[deque[int]] = [deque() for _ in range(count)]  # given, not started
        self._idle: set[int] = set()  # finished, nothing given, not told to stop
        self._gone: set[int] = set()
        self._told_to_stop = [False] * count
        self._open = {connection: index for index, connection in enumerate(self._connections)}
        self._frames = [_Frames() for _ in range(count)]
        self._receiving = threading.Lock()
        self.blocked = 0.0
        self.busy = 0.0
        self._stopped = False

    def _new_worker(self, index: int) -> tuple[BaseProcess, Connection, Connection]:
        """Worker `index`'s process, not started, and the two ends of its pipe."""
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(  # type: ignore[attr-defined]
            target=self._target,
            args=(index, theirs, *self._worker_args),
            name=f"quantflow-sweep-worker-{index}",
            daemon=True,
        )
        return process, ours, theirs

    def start(self) -> None:
        """Start the worker processes, SIGINT and SIGTERM ignored from their first
        instruction (a Ctrl-C reaches the whole process group, and would print a worker's
        KeyboardInterrupt traceback), and give each its first job."""
        with stop_signals_ignored():
            self._start_processes()
        log.info("sweep: %d worker processes (%s)", self.count, self._context.get_start_method())
        for index in range(self.count):
            self._give(index)

    def _start_processes(self) -> None:
        for process, theirs in zip(self.processes, self._their_ends, strict=True):
            process.start()
            # Only the worker may hold its end: when it dies, this process reads the end of
            # the pipe instead of waiting for the rest of a message that will never come.
            theirs.close()

    def replace(self, index: int) -> None:
        """Start a new worker in the place of worker `index`, which is gone (its jobs given
        back and its exit code asked for), and give it the next pending job."""
        with self._receiving:  # the reading thread never sees the pipes half swapped
            self._replaced.append(self.processes[index])
            self._connections[index].close()
            process, ours, theirs = self._new_worker(index)
            self.processes[index], self._connections[index] = process, ours
            self._their_ends[index] = theirs
            self._frames[index] = _Frames()
            with stop_signals_ignored():
                process.start()
            theirs.close()
            self._open[ours] = index
        self._gone.discard(index)
        self._told_to_stop[index] = False
        self.restarts += 1
        log.warning("sweep: worker %d replaced (%d replacements)", index, self.restarts)
        self._give(index)

    def started(self, index: int, backtest_id: int) -> None:
        """Worker `index` started a backtest: give it the next job, if there is one."""
        sent = self._sent[index]
        if sent and self.jobs[sent[0]].backtest_id == backtest_id:
            sent.popleft()
        self._settle()
        if self.pending:
            self._give(index)

    def finished(self, index: int) -> None:
        """Worker `index` finished a backtest: it has its next job, or it waits for one."""
        if not self._sent[index] and not self._told_to_stop[index]:
            self._idle.add(index)
        self._settle()

    def give_back(self, index: int) -> list[Job]:
        """Worker `index` is gone: the jobs it was given and never started go to the others."""
        self._gone.add(index)
        self._idle.discard(index)
        returned = list(self._sent[index])
        self._sent[index].clear()
        self.pending.extendleft(reversed(returned))
        self._settle()
        return [self.jobs[position] for position in returned]

    def add(self, jobs: Sequence[Job]) -> None:
        """More jobs, for an open-ended pool: idle workers get them at once."""
        start = len(self.jobs)
        self.jobs.extend(jobs)
        self.pending.extend(range(start, len(self.jobs)))
        self._settle()

    def close(self) -> None:
        """No job will be added any more: each worker stops once nothing is left for it."""
        self.open_ended = False
        self._settle()

    def _settle(self) -> None:
        """Give pending jobs to idle workers; stop the idle ones once no job is left (and
        none may be added)."""
        while self.pending and self._idle:
            self._give(self._idle.pop())
        unstarted = any(self._sent[i] for i in range(self.count) if i not in self._gone)
        if not self.pending and not unstarted and not self.open_ended:
            while self._idle:
                self._give(self._idle.pop())

    def _give(self, index: int) -> None:
        """Send worker `index` the next pending job, or None once there is none left; in an
        open-ended pool, a worker with nothing to do waits for jobs to be added."""
        if not self.pending and self.open_ended:
            self._idle.add(index)
            return
        position = self.pending.popleft() if self.pending else None
        given = position if position is None or position < self._in_file else self.jobs[position]
        try:
            self._connections[index].send(given)  # an int, or one small job: never waits
        except OSError:  # the worker is gone: its end will be read, and it is buried
            if position is not None:
                self.pending.appendleft(position)
            return
        if position is None:
            self._told_to_stop[index] = True
        else:
            self._sent[index].append(position)

    def receive(self) -> list[Message]:
        """The messages the workers have sent, waiting up to RECEIVE_SECONDS for one (runs in
        a thread). A worker whose pipe has ended gives Gone(index).

        It never waits for the rest of a message: it reads what has arrived, so a worker that
        dies in the middle of one, or stops there, cannot hold it up. A worker that ended
        before the wait and whose pipe has no end even so (a process the strategy forked
        holds a copy of its end) is gone too.
        """
        with self._receiving:
            deadline = time.monotonic() + RECEIVE_SECONDS
            messages: list[Message] = []
            while not messages and self._open and not self._stopped:
                ended = {i for i in self._open.values() if self.processes[i].exitcode is not None}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                ready = set(wait(list(self._open), remaining))
                for connection, index in list(self._open.items()):
                    if connection in ready:
                        try:
                            data = os.read(connection.fileno(), READ_BYTES)
                        except OSError:  # reset: the worker died with unread data of ours
                            data = b""
                        if data:
                            messages += self._frames[index].feed(data)
                            continue
                    elif index not in ended:
                        continue
                    del self._open[connection]
                    messages.append(Gone(index))
            return messages

    def exit_code(self, index: int) -> int | None:
        """Worker `index`'s exit code, once its pipe has ended (blocking: runs in a thread).

        Asked again and again rather than joined: `join` with a time limit waits on the
        process's sentinel, which a process the strategy forked may hold open long after the
        worker died.
        """
        return _exit_code_within(self.processes[index], STOP_SECONDS)

    def stop(self) -> None:
        """Kill the workers still running (they ignore SIGTERM), wait for every one, close
        the pipes (blocking)."""
        if self._stopped:
            return
        processes = [*self.processes, *self._replaced]
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            if process.pid is not None:
                process.join()  # no time limit: waitpid, not the sentinel
        with self._receiving:  # a receive abandoned in a thread returns within its wait
            self._stopped = True
            for connection in (*self._connections, *self._their_ends):
                connection.close()
        log.info("sweep: worker processes stopped")


def _exit_code_within(process: BaseProcess, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    while (code := process.exitcode) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return code


class _Frames:
    """Whole messages out of the bytes of one pipe, as `Connection.send` frames them: a
    4-byte big-endian length (or -1 and an 8-byte one, past 2 GiB), then the pickle."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        buffer = self._buffer
        buffer += data
        messages: list[Message] = []
        while len(buffer) >= 4:
            (size,) = struct.unpack_from("!i", buffer)
            header = 4
            if size == -1:
                if len(buffer) < 12:
                    break
                (size,) = struct.unpack_from("!Q", buffer, 4)
                header = 12
            if len(buffer) < header + size:
                break
            messages.append(pickle.loads(buffer[header : header + size]))  # noqa: S301 - our workers'
            del buffer[: header + size]
        return messages
