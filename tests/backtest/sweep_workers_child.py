"""What the worker-process tests of a sweep run in other processes.

    python -m tests.backtest.sweep_workers_child long URL FOLDER START_METHOD
        a sweep of two backtests that each write their worker's pid into FOLDER and sleep
    python -m tests.backtest.sweep_workers_child grid URL CONFIGS
        a sweep of CONFIGS quick backtests; prints "storing" before it stores them

Also holds `Announced` and `TellsItsCollector`, strategies the sweep's workers import by
reference.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import time
from pathlib import Path

from quantflow_async import Database
from quantflow_async.backtest import run_sweep, synthetic_bars
from quantflow_async.backtest.strategies import SmaCross


class Announced(SmaCross):
    """SmaCross that first writes its process id to `pid_file` (if given), then sleeps
    `sleep` seconds: a test learns which worker runs it, and when."""

    sleep: float = 0.0
    pid_file: str = ""

    def init(self) -> None:
        if self.pid_file:
            partial = Path(self.pid_file + ".partial")
            partial.write_text(str(os.getpid()))
            partial.rename(self.pid_file)  # whole or absent for a reader
        time.sleep(self.sleep)
        super().init()


class TellsItsCollector(SmaCross):
    """SmaCross that fails at once, its message saying how its worker process runs the
    garbage collector: the first threshold, and whether objects are frozen."""

    def init(self) -> None:
        frozen = gc.get_freeze_count() > 0
        raise RuntimeError(f"collector: threshold {gc.get_threshold()[0]}, frozen {frozen}")


async def long_sweep(url: str, folder: str, start_method: str) -> None:
    async with Database(url) as db:
        strategy = await db.strategies.create(name="long")
        grid = [{"sleep": 120.0, "pid_file": f"{folder}/{n}.pid"} for n in range(2)]
        await run_sweep(
            db, Announced, grid, synthetic_bars(500, seed=1), strategy_id=strategy.id,
            workers=2, start_method=start_method,
        )  # fmt: skip


async def grid_sweep(url: str, configs: int) -> None:
    async with Database(url) as db:
        strategy = await db.strategies.create(name="grid")
        grid = {"fast": [2], "slow": list(range(3, 3 + configs))}
        print("storing", flush=True)
        await run_sweep(db, "sma_cross", grid, synthetic_bars(50, seed=1), strategy_id=strategy.id)


if __name__ == "__main__":
    # Ctrl-C's default, even when started from a shell that ignores SIGINT in background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    command, url = sys.argv[1], sys.argv[2]
    if command == "long":
        asyncio.run(long_sweep(url, sys.argv[3], sys.argv[4]))
    else:
        asyncio.run(grid_sweep(url, int(sys.argv[3])))
