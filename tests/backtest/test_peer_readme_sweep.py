"""The README's sweep agrees with backtesting.py config by config: each of its 96 backtests
(the demo's six markets of 30,000 hourly bars, the 4 x 4 grid, cash 100,000, commission
0.0005) has the trades and the final equity that backtesting.py 0.6 gives for the same
config on the same CSV file, and the best config of each market is the one the peer's
`optimize` picks."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pandas as pd
import pytest
from backtesting import Backtest

from quantflow_async import Database
from quantflow_async.backtest import run_sweep
from tests.analysis.support import write_bars_csv

from .test_peer import PeerSmaCross

MARKETS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
GRID = {"fast": [3, 5, 8, 13], "slow": [21, 34, 55, 89]}
CASH, COMMISSION, BARS = 100_000, 0.0005, 30_000


def write_demo_markets(folder: Path) -> dict[str, Path]:
    """The six CSV files scripts/demo writes, by symbol."""
    return {
        market.upper(): write_bars_csv(folder / f"{market}.csv", BARS, seed=seed)
        for seed, market in enumerate(MARKETS, start=1)
    }


def peer_backtest(path: Path) -> Backtest:
    frame = pd.read_csv(path, index_col=0, parse_dates=True)
    frame.columns = [name.capitalize() for name in frame.columns]
    return Backtest(frame, PeerSmaCross, cash=CASH, commission=COMMISSION, exclusive_orders=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_each_of_the_readme_sweeps_96_configs_agrees_with_backtesting_py(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    files = write_demo_markets(tmp_path)
    ours = {}
    async with Database(migrated_sqlite_url) as db:  # the engine's agreement: one backend
        strategy = await db.strategies.create(name="readme-sweep")
        result = await run_sweep(
            db, "sma_cross", GRID, files, strategy_id=strategy.id, cash=CASH,
            commission=COMMISSION, workers=2,
        )  # fmt: skip
        assert (result.completed, result.failed) == (96, 0)
        for backtest_id in result.backtest_ids:
            backtest = await db.backtests.get(backtest_id)
            config = backtest.config or {}
            fast, slow = config["parameters"]["fast"], config["parameters"]["slow"]
            ours[config["symbol"], fast, slow] = backtest.metrics or {}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peer's "trades remain open", pandas deprecations
        for market, path in files.items():
            backtest = peer_backtest(path)
            for fast in GRID["fast"]:
                for slow in GRID["slow"]:
                    stats = backtest.run(fast=fast, slow=slow)
                    metrics = ours[market, fast, slow]
                    assert metrics["trades"] == stats["# Trades"], (market, fast, slow)
                    assert math.isclose(
                        metrics["final_equity"], stats["Equity Final [$]"], rel_tol=1e-9
                    ), (market, fast, slow, metrics["final_equity"], stats["Equity Final [$]"])
            best = backtest.optimize(**GRID, maximize="Return [%]")["_strategy"]
            top = max(
                ((f, s) for (m, f, s) in ours if m == market),
                key=lambda config: ours[market, *config]["return_pct"],
            )
            assert top == (best.fast, best.slow), market
