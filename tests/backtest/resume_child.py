"""A sweep of 200 quick backtests run as a child process, for the resume tests to stop it
with real signals (SIGKILL of this process alone, or Ctrl-C to its process group).

    python -m tests.backtest.resume_child URL
    python -m tests.backtest.resume_child URL SCHEDULER
        the same sweep's coordinator on a Dask cluster, on the scheduler's address

It prints "progress DONE" after each progress report, flushed, so the test can stop it
near its middle.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from quantflow_async import Database
from quantflow_async.backtest import Bars, SweepProgress, run_sweep, synthetic_bars

GRID = {"fast": list(range(2, 22)), "slow": list(range(25, 35))}  # 200 configs
JOBS = 200


def data() -> dict[str, Bars]:
    return {"WALK": synthetic_bars(3_000, seed=5, drift=0.0)}


def report(progress: SweepProgress) -> None:
    print(f"progress {progress.done}", flush=True)


async def sweep(url: str, scheduler: str | None) -> None:
    async with Database(url) as db:
        strategy = await db.strategies.create(name="resumed")
        if scheduler is None:
            await run_sweep(
                db, "sma_cross", GRID, data(), strategy_id=strategy.id, workers=2, progress=report
            )
        else:
            from quantflow_async.backtest.cluster import run_sweep_on_cluster

            await run_sweep_on_cluster(
                db, "sma_cross", GRID, data(), strategy_id=strategy.id, cluster=scheduler,
                progress=report,
            )  # fmt: skip
        print("finished", flush=True)


if __name__ == "__main__":
    # Ctrl-C's default, even when started from a shell that ignores SIGINT in background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    asyncio.run(sweep(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
