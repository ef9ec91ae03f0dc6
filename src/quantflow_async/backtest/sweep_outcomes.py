"""The event loop's side of a sweep: the workers' fills to the writer, their outcomes to the
store (through `SweepTally`), in order (`SweepOutcomes`), while `run_pool` runs the worker
processes. Three tasks: one reads the workers' pipes and hands out jobs, one submits fills,
one records outcomes; the reading never waits for the store until READ_AHEAD messages do.

`run_sweep` (sweep.py) runs one set of jobs this way; a search (sweep_runner.py) adds jobs
batch by batch to workers that wait for more, and waits for each batch's outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import pickle
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.conversion import error_document
from quantflow_async.backtest.sweep_folder import prune_dead_sweep_folders
from quantflow_async.backtest.sweep_tally import ProgressCallback, SweepTally
from quantflow_async.backtest.worker import (
    Completed,
    Exited,
    Failed,
    FillRows,
    Gone,
    Job,
    Message,
    Started,
    SweepFile,
)
from quantflow_async.backtest.worker_pool import WorkerPool
from quantflow_async.database import Database
from quantflow_async.errors import ScriptRerun
from quantflow_async.ingest.writer import TradeWriter
from quantflow_async.records import fills_from_rows
from quantflow_async.worker_start import SCRIPT_RERUN_EXIT, main_script

log = logging.getLogger(__name__)

RECORD_EVERY_SECONDS: Final = 0.25
"""Outcomes are recorded in batches at most this often; each batch waits for one flush."""
READ_AHEAD: Final = 16
"""Messages read from the workers that may wait for the writer (about 16 chunks of fills)
while outcomes are recorded, before the reading of the workers' pipes waits too."""


async def run_pool(sweep: SweepOutcomes, pool: WorkerPool, writer: TradeWriter) -> None:
    """Start the pool's workers, run `sweep` on them, and stop them however it ends."""
    try:
        pool.start()
        await sweep.run(pool, writer)
    finally:
        await stop_pool(pool)


async def stop_pool(pool: WorkerPool) -> None:
    """Stop the pool's workers in a daemon thread of its own, and wait for it, shielded.

    Not in one of anyio's worker threads: starting one is Python code, where a second Ctrl-C
    (asyncio.run's KeyboardInterrupt, raised wherever the main thread is) can land between
    the thread's start and its job, leaving a thread that never runs `pool.stop` and that the
    interpreter waits for at exit forever. This thread has its job from the start and never
    holds up the exit; the workers die with this process in any case (worker.py).
    """
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[None] = loop.create_future()

    def stop() -> None:
        try:
            pool.stop()
        finally:
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, stopped)

    threading.Thread(target=stop, name="quantflow-sweep-stop", daemon=True).start()
    # asyncio's own Task.cancel() passes through the shield, as it did through the wait for
    # anyio's thread: the thread stops the workers all the same.
    with anyio.CancelScope(shield=True):
        await asyncio.shield(stopped)


async def _pass_on(stream: MemoryObjectSendStream[Message], message: Message) -> None:
    """Send `message` to the next task. If that task has ended, it ended with an error, which
    stops the sweep: that error is the one to raise, so this task waits to be cancelled
    rather than add a BrokenResourceError of its own beside it."""
    try:
        await stream.send(message)
    except anyio.BrokenResourceError:
        await anyio.sleep_forever()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def dump_sweep_file(datasets: Mapping[str, Bars], jobs: list[Job], path: Path) -> None:
    """Write the file every worker reads once: the data sets and the jobs known now. Before
    that, remove the folders beside its own that killed sweeps left (sweep_folder.py)."""
    prune_dead_sweep_folders(path.parent.parent)
    with path.open("wb") as file:
        pickle.dump(SweepFile(dict(datasets), jobs), file, protocol=pickle.HIGHEST_PROTOCOL)


class SweepOutcomes:
    """The event loop's side: fills to the writer, outcomes to the store, in order."""

    def __init__(
        self,
        db: Database,
        jobs: list[Job],
        progress: ProgressCallback | None,
        max_worker_restarts: int,
        sweep_id: int | None = None,
    ) -> None:
        self.tally = SweepTally(db, jobs, progress, sweep_id)
        self.max_worker_restarts = max_worker_restarts
        self.fills = 0  # handed to the writer: this sweep's own, whoever else uses the writer
        self._in_flight: dict[int, int] = {}  # worker index -> backtest id
        self._exited: set[int] = set()
        self._heard: set[int] = set()  # workers (by index) that sent a message since they started
        self._writer: TradeWriter | None = None
        # Held while fills are submitted, and while outcomes are recorded: on SQLite a writer
        # that always has a batch to commit holds the write lock almost all the time, and
        # the status updates, polling for it in SQLite's busy handler with growing sleeps,
        # could wait for many batches. With no new fills, they wait for one at most.
        self._store_turn = anyio.Lock()
        self.record_every = RECORD_EVERY_SECONDS
        self._read_all = anyio.Event()  # every worker has exited: no more messages will come
        self._changed = anyio.Event()  # set, and replaced, each time a backtest is recorded
        self.over = False  # every worker has exited: nothing more will be recorded
        self.stopped = False  # `run` ended with an error or was cancelled, which it raised

    def add(self, jobs: Sequence[Job]) -> None:
        """More jobs, which an open-ended pool runs (a search's next trials)."""
        self.tally.jobs.extend(jobs)

    async def wait_for(self, backtest_ids: Sequence[int]) -> None:
        """Return once each of these backtests is recorded finished, or once every worker is
        gone (the sweep is stopping, or no worker is left to run them)."""
        while not self.over and not all(i in self.tally.finished for i in backtest_ids):
            await self._changed.wait()

    def unfinished(self) -> list[int]:
        return self.tally.unfinished()

    async def run(self, pool: WorkerPool, writer: TradeWriter) -> None:
        self._writer = writer
        send, receive = anyio.create_memory_object_stream[Message](max_buffer_size=math.inf)
        read, taken = anyio.create_memory_object_stream[Message](max_buffer_size=READ_AHEAD)
        ended = False
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._record_outcomes, receive)
                tasks.start_soon(self._submit, taken, writer, send)
                async with read:
                    await self._pump(pool, read)
                self._read_all.set()
            ended = True
        except BaseExceptionGroup as group:
            # One of its tasks failed (the store, the progress callback): raise its error as
            # itself, as a caller of one coroutine expects.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from group
            raise
        finally:
            self.over = True
            self.stopped = not ended
            self._changed.set()

    async def _pump(self, pool: WorkerPool, read: MemoryObjectSendStream[Message]) -> None:
        """Read the workers' messages until every worker has exited, hand out their jobs, and
        pass what they say on, in order, to `_submit`."""
        while len(self._exited) < pool.count:
            # Abandoned on cancellation (messages it then reads are dropped: the sweep is
            # stopping): a shielded wait would swallow asyncio's own Task.cancel(), which
            # is what Ctrl-C under asyncio.run sends.
            messages = await anyio.to_thread.run_sync(pool.receive, abandon_on_cancel=True)
            for message in messages:
                await self._take(message, pool, read)
        # Jobs a dead worker gave back after every other worker had been told to stop, or
        # once no replacement was left.
        error = ChildProcessError(
            "every worker process exited before this backtest ran ("
            f"{pool.restarts} of max_worker_restarts={self.max_worker_restarts} replacements made)"
        )
        while pool.pending:
            job = pool.jobs[pool.pending.popleft()]
            await _pass_on(read, Failed(-1, job.backtest_id, error_document(error)))

    async def _take(
        self, message: Message, pool: WorkerPool, read: MemoryObjectSendStream[Message]
    ) -> None:
        worker = message.worker
        if not isinstance(message, Gone):
            self._heard.add(worker)
        match message:
            case FillRows():
                await _pass_on(read, message)
            case Started(backtest_id=backtest_id):
                self._in_flight[worker] = backtest_id
                pool.started(worker, backtest_id)
                await _pass_on(read, message)
            case Completed() | Failed():
                self._in_flight.pop(worker, None)
                pool.finished(worker)
                await _pass_on(read, message)
            case Exited(blocked=blocked, busy=busy):
                self._exited.add(worker)
                pool.blocked += blocked
                pool.busy += busy
            case Gone() if worker not in self._exited:
                code = await anyio.to_thread.run_sync(pool.exit_code, worker)
                await self._bury(pool, worker, code, read)

    async def _submit(
        self,
        taken: MemoryObjectReceiveStream[Message],
        writer: TradeWriter,
        outcomes: MemoryObjectSendStream[Message],
    ) -> None:
        """Hand the fills to the writer and the rest to `_record_outcomes`, in the order the
        workers said them: an outcome reaches the recorder only once every fill of its
        backtest was submitted, and its flush then covers them all. Waiting for its turn
        while outcomes are recorded, this holds up neither the reading of the workers' pipes
        nor the workers, until READ_AHEAD messages wait."""
        async with taken, outcomes:
            async for message in taken:
                if not isinstance(message, FillRows):
                    await _pass_on(outcomes, message)
                    continue
                async with self._store_turn:
                    await writer.submit_many(fills_from_rows(message.rows))
                self.fills += len(message.rows)
                self._report()

    async def _bury(
        self,
        pool: WorkerPool,
        worker: int,
        code: int | None,
        read: MemoryObjectSendStream[Message],
    ) -> None:
        """A worker that died (killed, out of memory) fails the backtest it was running and
        gives back the ones it had not started, for the other workers and for the new worker
        started in its place while jobs wait and replacements are left."""
        self._exited.add(worker)
        if code == SCRIPT_RERUN_EXIT and worker not in self._heard:
            # It ended importing the main script, before a word: the next would end the same way.
            raise ScriptRerun(
                f"the sweep's worker processes ran the main script {main_script()} "
                "again as they imported it, and stopped: put the script's top-level code under "
                '`if __name__ == "__main__":`, as Python\'s multiprocessing requires'
            )
        log.error("sweep: worker %d exited with code %s", worker, code)
        returned = pool.give_back(worker)
        backtest_id = self._in_flight.pop(worker, None)
        if backtest_id is not None:
            error = ChildProcessError(f"the worker process exited with code {code}")
            await _pass_on(read, Failed(worker, backtest_id, error_document(error)))
        if returned:
            log.info("sweep: %d backtests of worker %d go to the others", len(returned), worker)
        if (pool.pending or pool.open_ended) and pool.restarts < self.max_worker_restarts:
            pool.replace(worker)
            self._exited.discard(worker)
            self._heard.discard(worker)

    async def _record_outcomes(self, outcomes: MemoryObjectReceiveStream[Message]) -> None:
        async with outcomes:
            async for first in outcomes:
                # Let outcomes gather, for fewer flushes, unless none will follow.
                with anyio.move_on_after(self.record_every):
                    await self._read_all.wait()
                batch = [first]
                while True:  # take what else is waiting, so one flush covers it all
                    try:
                        batch.append(outcomes.receive_nowait())
                    except anyio.WouldBlock:
                        break
                    except anyio.EndOfStream:
                        break
                if self._writer is not None and any(isinstance(m, Completed) for m in batch):
                    # A backtest is completed once its fills are in: every one of them was
                    # submitted before its outcome was read. Fills go on flowing meanwhile.
                    await self._writer.flush()
                async with self._store_turn:
                    await self._record(batch)

    async def _record(self, batch: Sequence[Message]) -> None:
        """Record a batch of outcomes: the backtests that started, in one transaction, then
        each finished one in its own, reported as it is stored."""
        tally = self.tally
        started = [m.backtest_id for m in batch if isinstance(m, Started)]
        await tally.db.backtests.set_status_many(started, "running")
        for message in batch:
            match message:
                case Completed(backtest_id=backtest_id, metrics=metrics, results=results):
                    recorded = await tally.record_completed(backtest_id, metrics, results)
                case Failed(backtest_id=backtest_id, error=error):
                    recorded = await tally.record_failed(backtest_id, error)
                case _:
                    continue
            if recorded:
                self._changed.set()
                self._changed = anyio.Event()
                self._report()

    def _report(self) -> None:
        if self._writer is not None:  # both of the sweep's tasks report, once it runs
            self.tally.report(self.fills)
