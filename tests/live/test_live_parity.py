"""`quantflow live run` on the paper exchange replaying a file makes the fills `quantflow backtest
run` makes on the same file: the same bars, sides, quantities and prices."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantflow_async import Database, Settings
from tests.support.paper import paper_process, write_bars
from tests.support.walks import random_walk

CONFIG = {"fast": 4, "slow": 12}
COMMISSION = "0.001"
SYMBOL = "BTCUSDT"


def quantflow(
    *args: str, database_url: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    env["QUANTFLOW_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "quantflow_async.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


async def _fills(database_url: str, **where: int) -> list[tuple[str, str, str, float]]:
    async with Database(settings=Settings(database_url=database_url)) as db:
        trades = await db.trades.list(limit=100_000, **where)
    return [
        (t.executed_at.isoformat(), t.side, str(t.quantity.normalize()), float(t.price))
        for t in sorted(trades, key=lambda t: (t.executed_at, t.id))
    ]


@pytest.mark.slow
def test_live_run_on_the_paper_exchange_makes_the_backtests_fills(tmp_path: Path) -> None:
    bars = write_bars(tmp_path / "btc.csv", random_walk(140, seed=11))
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'parity.sqlite3'}"
    assert quantflow("migrate", database_url=database_url).returncode == 0
    backtest = quantflow(
        "backtest", "run", "sma_cross", "--data", str(bars), "--symbol", SYMBOL,
        "--config", json.dumps(CONFIG), "--cash", "10000", "--commission", COMMISSION, "--json",
        database_url=database_url,
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    backtest_id = json.loads(backtest.stdout)["backtest_id"]
    expected = asyncio.run(_fills(database_url, backtest_id=backtest_id))
    assert len(expected) >= 6, "the data should make the strategy trade several times"

    with paper_process(
        bars, tmp_path / "exchange.sqlite3", symbol=SYMBOL,
        extra=[
            "--bar-seconds", "0.2", "--cash", "10000", "--commission", COMMISSION,
            "--start-when-asked",  # the runner, slow to start on a busy machine, misses no bar
        ],
    ) as paper:  # fmt: skip
        live = quantflow(
            "live", "run", "sma_cross", "--venue", paper.url, "--symbol", SYMBOL,
            "--config", json.dumps(CONFIG), "--commission", COMMISSION,
            "--strategy-name", "sma_cross live", "--idle-exit", "2", "--json",
            database_url=database_url, timeout=150,
        )  # fmt: skip
    assert live.returncode == 0, live.stderr
    report = json.loads(live.stdout)
    assert report["orders_rejected"] == 0, report

    async def live_strategy_id() -> int:
        async with Database(settings=Settings(database_url=database_url)) as db:
            return (await db.strategies.get_by_name("sma_cross live")).id

    got = asyncio.run(_fills(database_url, strategy_id=asyncio.run(live_strategy_id())))
    assert got == expected
