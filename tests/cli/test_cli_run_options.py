"""`quantflow backtest run` with the run options (--margin, --trade-on-close, --hedging, ...):
the README's strategy file with brackets, options reaching the engine and the stored config,
a bad value one line before anything is stored, and the decimals the fills are stored with."""

from __future__ import annotations

import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import backtesting.test
import pytest

from quantflow_async import Database
from quantflow_async.backtest import read_bars, run_backtest, strategy_class
from quantflow_async.records import Trade
from tests.cli.test_cli_backtest import assert_one_line_mistake, migrated, quantflow, write_bars

__all__ = ["migrated"]  # the fixture, used by name

GOOG_CSV = Path(backtesting.test.__file__).parent / "GOOG.csv"

# The README's example, as a user writes it.
MY_STRATEGY = """\
from quantflow_async.backtest import Strategy, crossover, sma


class MyStrategy(Strategy):
    fast: int = 10
    slow: int = 30
    stop: float = 0.05  # stop-loss 5% below the entry
    target: float = 0.10  # take-profit 10% above it

    def init(self) -> None:
        self.fast_ma = self.I(sma, self.data.close, self.fast)
        self.slow_ma = self.I(sma, self.data.close, self.slow)

    def next(self) -> None:
        close = self.data.close[-1]
        if crossover(self.fast_ma, self.slow_ma) and not self.position:
            self.buy(size=0.5, sl=close * (1 - self.stop), tp=close * (1 + self.target))
        for trade in self.trades:  # once 5% up, the stop moves to break even
            if trade.pl_pct > 0.05 and trade.sl is not None and trade.sl < trade.entry_price:
                trade.sl = trade.entry_price
"""


async def stored(url: str, backtest_id: int) -> tuple[dict[str, object], list[Trade]]:
    async with Database(url) as db:
        backtest = await db.backtests.get(backtest_id)
        fills = [t async for t in db.trades.stream(backtest_id=backtest_id)]
    assert backtest.config is not None
    return dict(backtest.config), fills


async def test_the_readme_strategy_runs_with_margin_as_written(
    tmp_path: Path, migrated: str
) -> None:
    (tmp_path / "my_strategy.py").write_text(MY_STRATEGY)
    shutil.copy(GOOG_CSV, tmp_path / "goog.csv")
    result = quantflow(
        "backtest", "run", "my_strategy.py:MyStrategy", "--data", "goog.csv", "--cash", "10000",
        "--commission", "0.002", "--margin", "0.5", "--json", "--database-url", migrated,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    config, fills = await stored(migrated, document["backtest_id"])
    expected = run_backtest(
        strategy_class(str(tmp_path / "my_strategy.py") + ":MyStrategy"),
        read_bars(tmp_path / "goog.csv"),
        cash=10_000,
        commission=0.002,
        margin=0.5,
    )
    assert document["trades"] == len(expected.trades) >= 5
    assert document["final_equity"] == expected.metrics["final_equity"]
    assert config["margin"] == 0.5
    assert len(fills) == len(expected.executions)


async def test_every_run_option_reaches_the_engine_and_the_stored_config(
    tmp_path: Path, migrated: str
) -> None:
    data = write_bars(tmp_path / "bars.csv")
    options = [
        "--trade-on-close", "--hedging", "--no-exclusive-orders", "--finalize-trades",
        "--spread", "0.001", "--slippage", "0.0005", "--periods-per-year", "252",
        "--margin", "0.8",
    ]  # fmt: skip
    result = quantflow(
        "backtest", "run", "sma_cross", "--data", str(data), "--commission", "0.002",
        *options, "--json", "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    settings = {
        "trade_on_close": True, "hedging": True, "exclusive_orders": False,
        "finalize_trades": True, "spread": 0.001, "slippage": 0.0005,
        "periods_per_year": 252.0, "margin": 0.8,
    }  # fmt: skip
    expected = run_backtest(
        "sma_cross", read_bars(data), commission=0.002, symbol="BARS", **settings
    )
    assert document["final_equity"] == expected.metrics["final_equity"]
    assert document["trades"] == len(expected.trades)
    config, _ = await stored(migrated, document["backtest_id"])
    assert {key: config[key] for key in settings} == settings


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--margin", "0"], "--margin: must be in (0.0, 1.0], got 0.0"),
        (["--margin", "1.5"], "--margin: must be in (0.0, 1.0], got 1.5"),
        (["--spread", "-0.01"], "--spread: must be in [0.0, 1.0)"),
        (["--slippage", "nan"], "--slippage: must be a finite number"),
        (["--periods-per-year", "0"], "--periods-per-year: must be in (0.0, inf)"),
        (["--money-decimals", "13"], "--money-decimals: must be a whole number in [0, 12]"),
        (["--price-decimals", "-1"], "--price-decimals: must be a whole number in [0, 12]"),
    ],
    ids=["margin 0", "margin above 1", "negative spread", "nan slippage", "no periods",
         "too many money decimals", "negative price decimals"],
)  # fmt: skip
def test_a_bad_run_option_is_one_line_before_anything_is_stored(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    data = write_bars(tmp_path / "bars.csv")
    url = f"sqlite+aiosqlite:///{tmp_path / 'never.sqlite3'}"
    result = quantflow(
        "backtest", "run", "sma_cross", "--data", str(data), *arguments, "--database-url", url,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, message)
    assert sorted(os.listdir(tmp_path)) == ["bars.csv"]


async def test_stored_prices_keep_the_datas_decimals_and_money_is_rounded(
    tmp_path: Path, migrated: str
) -> None:
    shutil.copy(GOOG_CSV, tmp_path / "goog.csv")
    result = quantflow(
        "backtest", "run", "sma_cross", "--data", "goog.csv", "--commission", "0.0021",
        "--money-decimals", "4", "--json", "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    _, fills = await stored(migrated, json.loads(result.stdout)["backtest_id"])
    assert len(fills) > 50
    for fill in fills:
        assert _decimals(fill.price) <= 2  # GOOG's cents
        assert _decimals(fill.fee) <= 4
        assert fill.pnl is None or _decimals(fill.pnl) <= 4


def _decimals(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
