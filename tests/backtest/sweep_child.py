"""A program the backtest tests run as a child process, to stop it with real signals.

    python -m tests.backtest.sweep_child sweep URL WORKERS
        a sweep of 12 long backtests (2 data sets)
    python -m tests.backtest.sweep_child run URL
        one long backtest, SIGKILLed by itself once some of its fills are committed

A sweep prints one line per progress report ("progress DONE FILLS"), flushed, so the test
can wait for the moment it wants.
Also holds what the sweep's worker processes import by reference: `Exploding` and
`Sleepy`, strategies, `dies_mid_message`, a worker that dies halfway through its first message,
`forks_then_dies_mid_message` and `sends_what_does_not_pickle`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import sys
import time
from multiprocessing.connection import Connection

from quantflow_async import Database
from quantflow_async.backtest import (
    SweepProgress,
    run_stored_backtest,
    run_sweep,
    synthetic_bars,
)
from quantflow_async.backtest.strategies import SmaCross
from quantflow_async.backtest.worker import Started, _Outbox

GRID = {"fast": [2, 3, 4], "slow": [5, 8]}
BARS = 100_000
# `run`'s: thousands of fills, more than its writer's queue holds, so it is killed mid-way
RUN_BARS = 20_000


class Exploding(SmaCross):
    """SmaCross that raises on bar `explode_at` (0: never)."""

    explode_at: int = 0

    def next(self) -> None:
        if self.explode_at and self.bar_index == self.explode_at:
            raise RuntimeError(f"exploded on bar {self.bar_index}")
        super().next()


class Sleepy(SmaCross):
    """SmaCross that first writes its process id to `pid_file` (if given) and sleeps
    `sleep` seconds."""

    sleep: float = 0.0
    pid_file: str = ""

    def init(self) -> None:
        if self.pid_file:
            # Whole or not at all: a reader polling for the file never sees it half-written.
            with open(f"{self.pid_file}.part", "w") as file:
                file.write(str(os.getpid()))
            os.replace(f"{self.pid_file}.part", self.pid_file)
        time.sleep(self.sleep)
        super().init()


def dies_mid_message(index: int, connection: Connection, sweep_file: str, chunk_size: int) -> None:
    """A sweep worker that takes its first job, writes the first bytes of a 1 MiB message
    (its length and a few bytes of it) and dies, as a worker killed mid-send does."""
    connection.recv()
    os.write(connection.fileno(), struct.pack("!i", 1 << 20) + b"the first bytes")
    os._exit(9)


def forks_then_dies_mid_message(
    index: int, connection: Connection, sweep_file: str, chunk_size: int
) -> None:
    """`dies_mid_message`, after forking a process that keeps a copy of the pipe's end (its
    id written to `sweep_file` + ".fork"), so the main process never sees the pipe end."""
    connection.recv()
    fork = os.fork()
    if fork == 0:
        time.sleep(60)
        os._exit(0)
    with open(sweep_file + ".fork", "w") as file:
        file.write(str(fork))
    os.write(connection.fileno(), struct.pack("!i", 1 << 20) + b"the first bytes")
    os._exit(9)


def sends_what_does_not_pickle(
    index: int, connection: Connection, sweep_file: str, chunk_size: int
) -> None:
    """A sweep worker whose first message holds a function, which cannot be pickled."""
    connection.recv()
    outbox = _Outbox(connection, os.getppid())
    outbox.put(Started(index, lambda: None))
    outbox.close()  # its thread ends the process first
    sys.exit(0)


def report(progress: SweepProgress) -> None:
    print(f"progress {progress.done} {progress.fills_stored}", flush=True)


async def sweep(url: str, workers: int) -> None:
    async with Database(url) as db:
        strategy = await db.strategies.create(name="child sweep")
        data = {f"S{i}": synthetic_bars(BARS, seed=i, drift=0.0) for i in range(2)}
        await run_sweep(
            db, "sma_cross", GRID, data, strategy_id=strategy.id, workers=workers, progress=report
        )
        print("finished", flush=True)


async def run(url: str) -> None:
    async with Database(url) as db:
        strategy = await db.strategies.create(name="child run")
        bars = synthetic_bars(RUN_BARS, seed=7, drift=0.0)
        async with db.writer(batch_size=500, max_queue=1000) as writer:
            task = asyncio.ensure_future(
                run_stored_backtest(
                    db, "sma_cross", bars, {"fast": 2, "slow": 5}, strategy_id=strategy.id,
                    writer=writer,
                )
            )  # fmt: skip
            while not task.done():
                if writer.stats().written:
                    os.kill(os.getpid(), signal.SIGKILL)  # mid-run, some fills committed
                await asyncio.sleep(0.001)
            await task
        sys.exit(3)  # finished before any fill was committed: not the case under test


if __name__ == "__main__":
    # Ctrl-C's default, even when started from a shell that ignores SIGINT in background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    command, url = sys.argv[1], sys.argv[2]
    if command == "sweep":
        asyncio.run(sweep(url, int(sys.argv[3])))
    else:
        asyncio.run(run(url))
