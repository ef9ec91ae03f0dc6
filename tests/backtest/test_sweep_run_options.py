"""The run options of one backtest (margin, trade_on_close, hedging, spread, ...) reach every
backtest of a sweep through `run_sweep`'s keyword arguments, checked before anything is
stored, and what the workers run equals `run_backtest` with the same options."""

from __future__ import annotations

import pytest

from quantflow_async import Database, Settings
from quantflow_async.backtest import StrategyConfigError, run_backtest, run_sweep, synthetic_bars

BARS = synthetic_bars(2_000, seed=3)
OPTIONS = {
    "margin": 0.5, "trade_on_close": True, "hedging": True, "exclusive_orders": False,
    "finalize_trades": True, "spread": 0.001, "money_decimals": 4,
}  # fmt: skip


@pytest.fixture
async def sqlite_db(migrated_sqlite_url: str) -> Database:
    async with Database(settings=Settings(database_url=migrated_sqlite_url)) as db:
        await db.migrate()
        yield db  # type: ignore[misc]


async def test_every_backtest_of_a_sweep_runs_with_the_options(sqlite_db: Database) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="sweep")).id
    grid = {"fast": [5, 10], "slow": [20]}
    await run_sweep(
        sqlite_db, "sma_cross", grid, BARS, strategy_id=strategy_id, workers=1,
        commission=0.002, **OPTIONS,
    )  # fmt: skip
    stored = await sqlite_db.backtests.list(strategy_id=strategy_id)
    assert len(stored) == 2
    for backtest in stored:
        assert backtest.config is not None and backtest.metrics is not None
        assert {key: backtest.config[key] for key in OPTIONS} == OPTIONS
        expected = run_backtest(
            "sma_cross", BARS, backtest.config["parameters"], commission=0.002, **OPTIONS
        )
        assert backtest.metrics["final_equity"] == expected.metrics["final_equity"]
        assert backtest.metrics["trades"] == len(expected.trades) > 0


async def test_a_bad_option_stores_no_sweep(sqlite_db: Database) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="sweep")).id
    with pytest.raises(StrategyConfigError, match="margin: must be in"):
        await run_sweep(
            sqlite_db, "sma_cross", {"fast": [5]}, BARS, strategy_id=strategy_id, margin=2.0
        )
    assert await sqlite_db.backtests.list(strategy_id=strategy_id) == []


async def test_a_misspelt_option_is_named_and_stores_nothing(sqlite_db: Database) -> None:
    from quantflow_async.backtest import run_search, run_stored_backtest

    strategy_id = (await sqlite_db.strategies.create(name="sweep")).id
    message = r"unknown run option 'comission'; the run options are symbol, cash, commission"
    calls = [
        run_sweep(sqlite_db, "sma_cross", {"fast": [5]}, BARS, strategy_id=strategy_id,
                  comission=0.1),
        run_stored_backtest(sqlite_db, "sma_cross", BARS, strategy_id=strategy_id,
                            comission=0.1),
        run_search(sqlite_db, "sma_cross", {"fast": {"int": [3, 9]}}, BARS,
                   strategy_id=strategy_id, trials=2, maximize="return_pct", comission=0.1),
    ]  # fmt: skip
    for call in calls:
        with pytest.raises(TypeError, match=message):
            await call  # type: ignore[call-arg]
    assert await sqlite_db.backtests.list(strategy_id=strategy_id) == []
    assert await sqlite_db.sweeps.list() == []


def test_the_settings_check_names_a_misspelt_setting_and_checks_only_those_given() -> None:
    from quantflow_async.backtest.settings import check_settings

    with pytest.raises(TypeError, match=r"unknown run option 'comission'; the run options are"):
        check_settings(cash=1.0, comission=0.1)  # type: ignore[call-arg]
    with pytest.raises(StrategyConfigError, match="margin: must be in"):
        check_settings(margin=2.0)
    check_settings(cash=1.0)  # the settings left out take their defaults elsewhere
