"""A backtest run from a bars file, as `quantflow backtest run --data FILE` stores one, and the
`quantflow` command run on its database."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from quantflow_async import Backtest, Database
from quantflow_async.backtest import read_bars, run_stored_backtest, synthetic_bars
from tests.support import cli


def write_bars_csv(path: Path, count: int, *, seed: int = 2) -> Path:
    """`count` hourly synthetic bars as a CSV file, as `scripts/demo` writes its markets."""
    bars = synthetic_bars(
        count, seed=seed, interval=timedelta(hours=1), volatility=0.004, drift=0.00002
    )
    columns = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    with path.open("w") as file:
        file.write("time,open,high,low,close,volume\n")
        for i in range(count):
            prices = ",".join(f"{float(column[i]):.6f}" for column in columns)
            file.write(f"{bars.time_at(i):%Y-%m-%dT%H:%M:%SZ},{prices}\n")
    return path


async def backtest_of_file(db: Database, strategy_id: int, path: Path) -> Backtest:
    """sma_cross fast=8 slow=55 over the bars of `path`, stored with its fills."""
    return await run_stored_backtest(
        db, "sma_cross", read_bars(path), {"fast": 8, "slow": 55}, strategy_id=strategy_id,
        cash=100_000, commission=0.0005,
    )  # fmt: skip


def quantflow(
    url: str, *args: str, cwd: Path, missing: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`quantflow ARGS` on the database at `url`, with no other QUANTFLOW_ setting, run in this
    process; with `missing`, in a new process, as where that package is not installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    env["QUANTFLOW_DATABASE_URL"] = url
    if missing is None:
        return cli.quantflow(*args, cwd=cwd, env=env)
    # A None in sys.modules makes an import fail as it does where the package is not installed.
    code = (
        f"import sys; sys.modules[{missing!r}] = None; "
        "from quantflow_async.cli.app import main; sys.exit(main())"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
        timeout=120, env=env,
    )  # fmt: skip
