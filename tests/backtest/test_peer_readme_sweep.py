"""The README's sweep agrees with backtesting.py config by config: each of its 96 backtests
(the demo's six markets of 30,000 hourly bars, the 4 x 4 grid, cash 100,000, commission
0.0005) has the trades and the final equity that backtesting.py 0.6 gives for the same
config on the same CSV file, and the best config of each market is the one the peer's
`optimize` picks."""

from __future__ import annotations

import math
import warnings
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA

from quantflow_async import Database
from quantflow_async.backtest import run_sweep, synthetic_bars

MARKETS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
GRID = {"fast": [3, 5, 8, 13], "slow": [21, 34, 55, 89]}
CASH, COMMISSION, BARS = 100_000, 0.0005, 30_000


class PeerSmaCross(Strategy):
    fast = 10
    slow = 20

    def init(self) -> None:
        self.fast_ma = self.I(SMA, self.data.Close, self.fast)
        self.slow_ma = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_ma, self.slow_ma):
            self.position.close()
            self.buy()
        elif crossover(self.slow_ma, self.fast_ma):
            self.position.close()
            self.sell()


def write_demo_markets(folder: Path) -> dict[str, Path]:
    """The six CSV files scripts/demo writes, made as it makes them."""
    files = {}
    for seed, market in enumerate(MARKETS, start=1):
        bars = synthetic_bars(
            BARS, seed=seed, interval=timedelta(hours=1), volatility=0.004, drift=0.00002
        )
        columns = (bars.open, bars.high, bars.low, bars.close, bars.volume)
        path = folder / f"{market}.csv"
        with path.open("w") as file:
            file.write("time,open,high,low,close,volume\n")
            for i in range(BARS):
                prices = ",".join(f"{float(column[i]):.6f}" for column in columns)
                file.write(f"{bars.time_at(i):%Y-%m-%dT%H:%M:%SZ},{prices}\n")
        files[market.upper()] = path
    return files


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
