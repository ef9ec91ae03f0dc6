"""Our own processes run the garbage collector less often; a program that calls the library
keeps its collector as it set it.

Each check of a process-wide setting runs in a process of its own, so this one's is never
changed.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from quantflow_async import Database
from quantflow_async.backtest import run_sweep, synthetic_bars
from quantflow_async.cli import main
from quantflow_async.collector import FIRST_THRESHOLD
from tests.backtest.sweep_workers_child import TellsItsCollector


def python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_collecting_less_often_raises_only_the_first_threshold() -> None:
    code = (
        "import gc; from quantflow_async.collector import collect_less_often; "
        "gc.set_threshold(700, 11, 12); collect_less_often(); print(gc.get_threshold())"
    )
    assert python(code) == f"({FIRST_THRESHOLD}, 11, 12)"


def test_collecting_less_often_never_lowers_a_higher_threshold() -> None:
    code = (
        "import gc; from quantflow_async.collector import collect_less_often; "
        "gc.set_threshold(50000); collect_less_often(); print(gc.get_threshold()[0])"
    )
    assert python(code) == "50000"


def test_a_collector_switched_off_by_a_zero_threshold_stays_off() -> None:
    code = (
        "import gc; from quantflow_async.collector import collect_less_often; "
        "gc.set_threshold(0); collect_less_often(); print(gc.get_threshold()[0])"
    )
    assert python(code) == "0"


def test_the_quantflow_program_collects_less_often_and_freezes_what_it_made_at_its_end(
    tmp_path: Path,
) -> None:
    code = (
        "import gc, sys; from quantflow_async.cli import main; "
        "sys.argv = ['quantflow', 'bars', 'synth', '-o', sys.argv[1], '--count', '50']; "
        "status = main(); print(status, gc.get_threshold()[0], gc.get_freeze_count() > 0)"
    )
    assert python(code, str(tmp_path / "bars.csv")) == f"0 {FIRST_THRESHOLD} True"


def test_the_program_called_with_arguments_leaves_its_callers_collector_alone(
    tmp_path: Path,
) -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert main(["bars", "synth", "-o", str(tmp_path / "bars.csv"), "--count", "50"]) == 0
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)


async def test_a_sweeps_workers_collect_less_often_with_what_they_loaded_frozen(
    migrated_sqlite_url: str,
) -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    async with Database(migrated_sqlite_url) as db:
        strategy = await db.strategies.create(name="collector")
        result = await run_sweep(
            db, TellsItsCollector, [{}], synthetic_bars(300, seed=1),
            strategy_id=strategy.id, workers=1,
        )  # fmt: skip
        (backtest_id,) = result.backtest_ids
        backtest = await db.backtests.get(backtest_id)
    assert backtest.status == "failed"
    assert backtest.results is not None
    message = backtest.results["error"]["message"]
    assert message == f"collector: threshold {FIRST_THRESHOLD}, frozen True"
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
