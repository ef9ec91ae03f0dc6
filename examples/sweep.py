"""A parameter sweep: every config of a grid on three markets, in two worker processes.

    python examples/sweep.py

Each backtest runs in a worker process and streams its fills to the one writer of this
process; every backtest and fill is stored. Then the best configs are printed as a table.
The database is $QUANTFLOW_DATABASE_URL, else ./dev.sqlite3; the schema is created if missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

from quantflow_async import Database, NotFound, SweepProgress, run_sweep
from quantflow_async.backtest import Bars, synthetic_bars

STRATEGY = "sma_cross"
GRID = {"fast": [5, 10, 20], "slow": [30, 60, 120]}  # 9 configs, every combination
TOP = 5


def progress_printer(every: float) -> Callable[[SweepProgress], None]:
    """A progress callback printing a line at most every `every` seconds, and at the end."""
    last = 0.0

    def show(progress: SweepProgress) -> None:
        # Called on the event loop after each chunk of fills and each finished backtest:
        # keep it quick, and say something only now and then.
        nonlocal last
        if time.monotonic() - last >= every or progress.done == progress.total:
            last = time.monotonic()
            done, total, fills = progress.done, progress.total, progress.fills_stored
            print(f"  {done}/{total} backtests done, {fills:,} fills stored", flush=True)

    return show


def make_markets() -> dict[str, Bars]:
    """Three made-up markets of a year of hourly bars each (seeded: the same on every run)."""
    return {
        name: synthetic_bars(8_760, seed=seed, interval=timedelta(hours=1), volatility=0.004)
        for seed, name in enumerate(["ALPHA", "BETA", "GAMMA"], start=1)
    }


async def main() -> None:
    markets = make_markets()
    async with Database() as db:
        await db.migrate()
        try:
            strategy = await db.strategies.get_by_name(STRATEGY)
        except NotFound:
            strategy = await db.strategies.create(name=STRATEGY)

        print(f"{len(markets) * 9} backtests of {STRATEGY} in 2 worker processes:")
        result = await run_sweep(
            db,
            STRATEGY,
            GRID,
            markets,  # symbol -> bars (or -> a CSV or Parquet file)
            strategy_id=strategy.id,
            workers=2,
            cash=10_000,
            commission=0.001,
            progress=progress_printer(every=1.0),
        )
        print(
            f"{result.completed} completed, {result.failed} failed, "
            f"{result.fills_stored:,} fills stored in {result.seconds:.1f} s"
        )
        # Every backtest of the sweep is stored with its metrics: read them back and rank.
        backtests = [await db.backtests.get(i) for i in result.backtest_ids]

    done = [b for b in backtests if b.status == "completed" and b.metrics]
    done.sort(key=lambda b: b.metrics["return_pct"] if b.metrics else 0.0, reverse=True)
    print(f"\nthe best {TOP} configs by return:")
    print(f"{'backtest':>8}  {'market':<6} {'fast':>4} {'slow':>4} {'return %':>9} {'sharpe':>7}")
    for backtest in done[:TOP]:
        config, metrics = backtest.config or {}, backtest.metrics or {}
        fast, slow = config["parameters"]["fast"], config["parameters"]["slow"]
        print(
            f"{backtest.id:>8}  {config['symbol']:<6} {fast:>4} {slow:>4} "
            f"{metrics['return_pct']:>9.2f} {_number(metrics['sharpe']):>7}"
        )


def _number(value: float | None) -> str:
    """Two decimals, or "-" for a statistic with nothing to be computed from."""
    return "-" if value is None else f"{value:.2f}"


# Worker processes are started with "spawn": they import this file, so the sweep must only
# run when it is the program, not when it is imported.
if __name__ == "__main__":
    asyncio.run(main())
