"""A script that runs a sweep without `if __name__ == "__main__":`: each worker process runs
its top-level code again while importing it (Python's multiprocessing imports the main
script in every process it starts). The worker stops at its first call into the library
with the fix in the message, before it opens or stores anything."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import subprocess
import sys
from pathlib import Path

import pytest

from quantflow_async import Database
from quantflow_async.errors import ScriptRerun
from quantflow_async.worker_start import refuse_script_rerun
from tests.backtest import module_level_database

UNGUARDED_SCRIPT = """
import asyncio
from quantflow_async import Database, run_sweep
from quantflow_async.backtest import synthetic_bars

async def main():
    async with Database({url!r}) as db:
        strategy = await db.strategies.create(name="unguarded")
        result = await run_sweep(
            db, "sma_cross", [{{"fast": 3, "slow": 21}}], synthetic_bars(500, seed=1),
            strategy_id=strategy.id, workers=1, max_worker_restarts=0,
        )
        print("completed", result.completed, "failed", result.failed)

asyncio.run(main())
"""


def test_a_script_without_a_main_guard_is_told_to_add_one_and_its_workers_store_nothing(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT.format(url=migrated_sqlite_url))
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["completed", "0", "failed", "1"]
    assert (
        f"Database() was called by a worker process while it imported the main script, {script}"
        in run.stderr
    )
    assert 'under `if __name__ == "__main__":`' in run.stderr
    assert "already exists" not in run.stderr  # the worker never reached the database


async def test_outside_a_worker_starting_the_library_is_used_as_ever(
    migrated_sqlite_url: str,
) -> None:
    refuse_script_rerun("Database()")
    async with Database(migrated_sqlite_url) as db:
        assert await db.strategies.list() == []


def test_inside_a_worker_the_main_script_s_code_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        multiprocessing.process.current_process(), "_inheriting", True, raising=False
    )
    script_globals = {"__name__": "__mp_main__", "Database": Database}
    with pytest.raises(ScriptRerun, match="Database\\(\\) was called by a worker process"):
        exec("Database('sqlite+aiosqlite:///never-opened.sqlite3')", script_globals)  # noqa: S102


def test_a_module_a_worker_imports_to_unpickle_its_target_may_make_a_database() -> None:
    """Not the main script: multiprocessing is `_inheriting` while it imports the module of
    the target, and a module-level Database() there is fine."""
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=module_level_database.exit_with_url_length)
    process.start()
    process.join(60)
    assert process.exitcode == len(module_level_database.URL)
