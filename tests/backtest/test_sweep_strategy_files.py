"""A sweep of a strategy from the user's own file: each worker process loads the class by
its reference; a class no worker can load is refused before anything is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantflow_async import Database, run_sweep
from quantflow_async.backtest import Strategy, run_backtest, synthetic_bars
from quantflow_async.backtest.strategies import strategy_class
from quantflow_async.backtest.strategy import StrategyConfigError
from quantflow_async.worker_start import SCRIPT_RERUN_EXIT

BARS = {"A": synthetic_bars(500, seed=1), "B": synthetic_bars(500, seed=2)}
MY_STRATEGY = """\
from quantflow_async.backtest import Strategy


class HoldPart(Strategy):
    size: float = 0.5

    def next(self) -> None:
        if not self.position:
            self.buy(size=self.size)
"""


@pytest.fixture
async def db(migrated_sqlite_url: str) -> Database:  # type: ignore[misc]
    async with Database(migrated_sqlite_url) as made:
        await made.migrate()
        yield made


async def test_workers_load_a_file_strategy_by_its_reference(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "my_strategy.py"
    path.write_text(MY_STRATEGY)
    reference = f"{path}:HoldPart"
    strategy_id = (await db.strategies.create(name="mine")).id
    result = await run_sweep(
        db, reference, {"size": [0.25, 0.5]}, BARS, strategy_id=strategy_id, workers=2
    )
    assert (result.completed, result.failed) == (4, 0)
    cls = strategy_class(reference)
    for backtest_id in result.backtest_ids:
        backtest = await db.backtests.get(backtest_id)
        assert backtest.config is not None
        assert backtest.config["strategy"] == f"{path.resolve()}:HoldPart"
        expected = run_backtest(cls, BARS[backtest.config["symbol"]], backtest.config["parameters"])
        assert backtest.metrics == expected.metrics


async def test_a_strategy_class_defined_in_a_function_is_refused_before_anything_is_stored(
    db: Database,
) -> None:
    class Local(Strategy):
        def next(self) -> None:
            pass

    strategy_id = (await db.strategies.create(name="local")).id
    with pytest.raises(StrategyConfigError, match="defined inside a function"):
        await run_sweep(db, Local, [{}], BARS, strategy_id=strategy_id, workers=1)
    assert await db.backtests.list() == []


ENDS_ITS_WORKER = """\
import os

from quantflow_async.backtest import Strategy


class EndsItsWorker(Strategy):
    code: int = 97

    def next(self) -> None:
        os._exit(self.code)
"""


async def test_a_worker_ending_mid_backtest_with_the_script_rerun_status_is_only_replaced(
    db: Database, tmp_path: Path
) -> None:
    """Ending with the status a re-run main script gives, but after it started a backtest: a
    dead worker as any other (its backtest failed, a new worker in its place), not ScriptRerun."""
    path = tmp_path / "ends.py"
    path.write_text(ENDS_ITS_WORKER)
    strategy_id = (await db.strategies.create(name="ends")).id
    result = await run_sweep(
        db, f"{path}:EndsItsWorker", [{"code": SCRIPT_RERUN_EXIT}], BARS["A"],
        strategy_id=strategy_id, workers=1,
    )  # fmt: skip
    assert (result.completed, result.failed) == (0, 1)
