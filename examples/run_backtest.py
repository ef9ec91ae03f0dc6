"""One backtest of a shipped strategy, stored with every fill, and its metrics printed.

    python examples/run_backtest.py              # two years of synthetic hourly bars
    python examples/run_backtest.py goog.csv     # or your own OHLCV bars (CSV or Parquet)

The database is $QUANTFLOW_DATABASE_URL, else ./dev.sqlite3; the schema is created if missing.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from quantflow_async import Database, NotFound, run_stored_backtest
from quantflow_async.backtest import Bars, read_bars, synthetic_bars

STRATEGY = "sma_cross"  # one of quantflow_async.backtest.STRATEGIES
PARAMETERS = {"fast": 10, "slow": 30}


def load_bars(argv: list[str]) -> tuple[Bars, str]:
    """The bars to simulate and their symbol: a file named on the command line, else made up."""
    if argv:
        return read_bars(argv[0]), Path(argv[0]).stem.upper()
    # A seeded random walk: the same bars, the same fills, on every run.
    hourly = synthetic_bars(17_520, seed=7, interval=timedelta(hours=1), volatility=0.004)
    return hourly, "SYNTH"


async def main(argv: list[str]) -> None:
    bars, symbol = load_bars(argv)
    async with Database() as db:
        await db.migrate()  # nothing to do once the schema is current
        # A backtest belongs to a stored strategy: reuse it on the next run, create it once.
        try:
            strategy = await db.strategies.get_by_name(STRATEGY)
        except NotFound:
            strategy = await db.strategies.create(name=STRATEGY, config=PARAMETERS)

        print(f"running {STRATEGY} {PARAMETERS} over {len(bars):,} bars of {symbol}...")
        # The run is stored as it goes: the backtest (pending -> running -> completed), every
        # execution as a fill through the writer, then the metrics and the equity curve.
        backtest = await run_stored_backtest(
            db,
            STRATEGY,
            bars,
            PARAMETERS,
            strategy_id=strategy.id,
            cash=10_000,
            commission=0.001,  # 0.1% of each order's value
            symbol=symbol,
        )
        fills = await db.trades.count(backtest_id=backtest.id)

    metrics = backtest.metrics or {}
    print(f"backtest {backtest.id} ({backtest.status}): {fills:,} fills stored")
    for key in ("trades", "final_equity", "return_pct", "max_drawdown_pct", "sharpe"):
        value = metrics.get(key)  # None when undefined, e.g. a Sharpe ratio without trades
        shown = "n/a" if value is None else f"{value:,.2f}" if isinstance(value, float) else value
        print(f"  {key:<17} {shown:>12}")
    print(f"draw it: quantflow report {backtest.id} -o backtest.png")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
