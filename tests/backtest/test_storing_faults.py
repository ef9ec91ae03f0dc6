"""A finished backtest always ends completed or failed, whatever its metrics and its error hold;
every setting is checked before anything is stored; a sweep counts its own fills.

Each fault is triggered for real: a strategy that earns enough on minute bars that its CAGR
passes what the store keeps as a JSON float, a strategy whose error text holds a NUL, one
whose error cannot even be turned into text, a bad setting, a writer shared with others.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from quantflow_async import Database, Settings
from quantflow_async.backtest import (
    BacktestFailed,
    Bars,
    Strategy,
    StrategyConfigError,
    run_backtest,
    run_stored_backtest,
    run_sweep,
    synthetic_bars,
)
from tests.conftest import make_fill

START = datetime(2024, 1, 1, tzinfo=UTC)


def minute_bars(count: int, growth: float) -> Bars:
    """Minute bars whose close grows by `growth` in all (0: flat)."""
    times = [START + timedelta(minutes=i) for i in range(count)]
    closes = [100.0 * (1 + growth * i / (count - 1)) for i in range(count)]
    return Bars.from_arrays(times, closes, closes, closes, closes)


RISING = minute_bars(100, 0.01)  # 1% in 99 minutes: a CAGR of about 1e22 %
SOARING = minute_bars(100, 1.0)  # 100% in 99 minutes: a CAGR past any float
FLAT = minute_bars(100, 0.0)


class BuyAndHold(Strategy):
    """Buys on its first bar and holds to the end."""

    def next(self) -> None:
        if not self.position.size:
            self.buy()


class RaisesNul(Strategy):
    """Raises an error whose text holds a NUL, as text read from a binary file may."""

    def next(self) -> None:
        raise RuntimeError("bad byte \x00 in the feed")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("this error cannot be shown")


class RaisesUnprintable(Strategy):
    """Raises an error whose str() itself raises."""

    def next(self) -> None:
        raise Unprintable


@pytest.fixture
async def sqlite_db(migrated_sqlite_url: str) -> Database:
    async with Database(settings=Settings(database_url=migrated_sqlite_url)) as db:
        await db.migrate()
        yield db  # type: ignore[misc]


def test_the_storable_form_is_null_for_non_finite_and_a_repr_string_for_too_large() -> None:
    from quantflow_async.backtest.conversion import storable

    document = {"a": math.nan, "b": [math.inf, -1e300], "c": 1.5e16, "d": 9.9e15, "e": 10**20}
    assert storable(document) == {
        "a": None,
        "b": [None, "-1e+300"],
        "c": "1.5e+16",
        "d": 9.9e15,
        "e": 10**20,
    }


def test_the_storable_form_of_a_text_with_a_nul_or_a_lone_surrogate_shows_them_escaped() -> None:
    from quantflow_async.backtest.conversion import storable

    assert storable({"m": "a\x00b\ud800c"}) == {"m": "a\\x00b\\ud800c"}


async def test_a_backtest_whose_cagr_passes_1e16_ends_completed_with_it_as_text(
    db: Database, strategy_id: int
) -> None:
    in_memory = run_backtest(BuyAndHold, RISING).metrics["cagr_pct"]
    assert in_memory > 1e16
    backtest = await run_stored_backtest(db, BuyAndHold, RISING, strategy_id=strategy_id)
    assert backtest.status == "completed"
    assert backtest.metrics is not None
    assert backtest.metrics["cagr_pct"] == repr(in_memory)
    assert float(backtest.metrics["cagr_pct"]) == in_memory


async def test_a_backtest_whose_cagr_overflows_a_float_ends_completed_with_it_null(
    db: Database, strategy_id: int
) -> None:
    backtest = await run_stored_backtest(db, BuyAndHold, SOARING, strategy_id=strategy_id)
    assert backtest.status == "completed"
    assert backtest.metrics is not None
    assert backtest.metrics["cagr_pct"] is None
    assert backtest.metrics["return_pct"] > 90  # bought on the second bar


async def test_a_sweep_with_an_unstorably_large_metric_completes_every_backtest(
    sqlite_db: Database,
) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="sweep")).id
    result = await run_sweep(
        sqlite_db, BuyAndHold, [{}], {"UP": RISING, "FLAT": FLAT}, strategy_id=strategy_id
    )
    assert (result.completed, result.failed) == (2, 0)
    statuses = [(await sqlite_db.backtests.get(i)).status for i in result.backtest_ids]
    assert statuses == ["completed", "completed"]


async def test_an_error_text_holding_a_nul_is_stored_and_the_backtest_ends_failed(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(BacktestFailed) as caught:
        await run_stored_backtest(db, RaisesNul, FLAT, strategy_id=strategy_id)
    backtest = await db.backtests.get(caught.value.backtest_id)
    assert backtest.status == "failed"
    assert backtest.results is not None
    assert backtest.results["error"]["message"] == "bad byte \\x00 in the feed"


async def test_a_sweep_with_a_nul_in_an_error_text_fails_that_backtest_and_completes_the_rest(
    sqlite_db: Database,
) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="sweep")).id
    grid = [{}]
    failing = await run_sweep(sqlite_db, RaisesNul, grid, FLAT, strategy_id=strategy_id)
    holding = await run_sweep(sqlite_db, BuyAndHold, grid, FLAT, strategy_id=strategy_id)
    assert (failing.completed, failing.failed) == (0, 1)
    assert (holding.completed, holding.failed) == (1, 0)
    backtest = await sqlite_db.backtests.get(failing.backtest_ids[0])
    assert backtest.status == "failed"
    assert backtest.results is not None
    assert "\\x00" in backtest.results["error"]["message"]


async def test_an_error_that_cannot_be_shown_still_ends_the_backtest_failed(
    db: Database, strategy_id: int
) -> None:
    # BacktestFailed's own message calls str() of the error too, which raises here.
    with pytest.raises((BacktestFailed, ValueError)):
        await run_stored_backtest(db, RaisesUnprintable, FLAT, strategy_id=strategy_id)
    [backtest] = await db.backtests.list()
    assert backtest.status == "failed"
    assert backtest.results is not None
    assert backtest.results["error"]["type"] == "Unprintable"
    assert "cannot be shown" in backtest.results["error"]["message"]


BAD_SETTINGS = [
    ({"commission": 2}, "commission: must be in"),
    ({"commission": -0.5}, "commission: must be in"),
    ({"commission": math.nan}, "commission: must be a finite number"),
    ({"cash": 0}, "cash: must be in"),
    ({"cash": math.inf}, "cash: must be a finite number"),
    ({"slippage": 1.0}, "slippage: must be in"),
    ({"periods_per_year": 0}, "periods_per_year: must be in"),
    ({"symbol": ""}, "symbol: must be"),
    ({"exclusive_orders": "yes"}, "exclusive_orders: must be"),
]
BAD_IDS = [
    "commission 2", "commission -0.5", "commission nan", "cash 0", "cash inf", "slippage 1",
    "periods 0", "empty symbol", "exclusive_orders str",
]  # fmt: skip


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS, ids=BAD_IDS)
async def test_a_bad_setting_of_a_stored_backtest_is_refused_before_anything_is_stored(
    db: Database, strategy_id: int, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(StrategyConfigError, match=message):
        await run_stored_backtest(
            db,
            "sma_cross",
            FLAT,
            strategy_id=strategy_id,
            **settings,  # type: ignore[arg-type]
        )
    assert await db.backtests.list() == []


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS, ids=BAD_IDS)
async def test_a_bad_setting_of_a_sweep_is_refused_before_anything_is_stored(
    sqlite_db: Database, settings: dict[str, object], message: str
) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="sweep")).id
    with pytest.raises(StrategyConfigError, match=message):
        await run_sweep(
            sqlite_db,
            "sma_cross",
            {"fast": [3]},
            FLAT,
            strategy_id=strategy_id,
            **settings,  # type: ignore[arg-type]
        )
    assert await sqlite_db.backtests.list() == []


async def test_fills_stored_counts_the_sweeps_own_fills_on_a_shared_writer(
    sqlite_db: Database,
) -> None:
    strategy_id = (await sqlite_db.strategies.create(name="sweep")).id
    bars = synthetic_bars(2_000, seed=3)
    async with sqlite_db.writer() as writer:
        await writer.submit_many([make_fill(strategy_id, n) for n in range(25)])
        await writer.flush()
        result = await run_sweep(
            sqlite_db, "sma_cross", {"fast": [3, 5]}, bars, strategy_id=strategy_id,
            writer=writer,
        )  # fmt: skip
    own = sum([await sqlite_db.trades.count(backtest_id=i) for i in result.backtest_ids])
    assert own > 0
    assert result.fills_stored == own
