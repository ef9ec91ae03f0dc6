"""A script that runs a sweep without `if __name__ == "__main__":`: each worker process runs
its top-level code again while importing it (Python's multiprocessing imports the main
script in every process it starts). The worker stops when it opens the database, with the
fix in the message, before it stores anything. A guarded script may keep a Database object
at module level: making one opens nothing."""

from __future__ import annotations

import multiprocessing.process
import subprocess
import sys
from pathlib import Path

import pytest

from quantflow_async import Database
from quantflow_async.errors import ScriptRerun

SCRIPT = """
import asyncio
from quantflow_async import Database, run_sweep
from quantflow_async.backtest import synthetic_bars

DATABASE = Database({url!r})

async def main():
    async with DATABASE as db:
        strategy = await db.strategies.create(name="script")
        result = await run_sweep(
            db, "sma_cross", [{{"fast": 3, "slow": 21}}], synthetic_bars(500, seed=1),
            strategy_id=strategy.id, workers=1, max_worker_restarts={restarts},
        )
        print("completed", result.completed, "failed", result.failed)

{call}
"""
UNGUARDED = "asyncio.run(main())"
GUARDED = 'if __name__ == "__main__":\n    asyncio.run(main())'


def run_script(
    folder: Path, url: str, call: str, *, restarts: int = 0
) -> subprocess.CompletedProcess[str]:
    script = folder / "sweep_script.py"
    script.write_text(SCRIPT.format(url=url, call=call, restarts=restarts))
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_script_without_a_main_guard_is_told_to_add_one_and_its_workers_store_nothing(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    """The sweep stops at the first worker that ends so, with the fix: no other worker is
    started to end the same way, and no traceback comes from a worker."""
    run = run_script(tmp_path, migrated_sqlite_url, UNGUARDED, restarts=3)
    assert run.returncode == 1
    assert run.stdout == ""
    script = tmp_path / "sweep_script.py"
    told = f"quantflow: {migrated_sqlite_url} was opened by a worker process while it imported"
    assert run.stderr.count(told) == 1, run.stderr
    assert f"the main script, {script}: put" in run.stderr
    assert "spawn_main" not in run.stderr  # no traceback from a worker's start-up
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("quantflow_async.errors.ScriptRerun: the sweep's worker processes")
    assert 'under `if __name__ == "__main__":`' in last
    assert "already exists" not in run.stderr  # the worker never reached the database


def test_a_guarded_script_may_keep_its_database_at_module_level(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    run = run_script(tmp_path, migrated_sqlite_url, GUARDED)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["completed", "1", "failed", "0"]
    assert "ScriptRerun" not in run.stderr


async def test_inside_a_worker_the_main_script_s_code_may_not_open_a_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        multiprocessing.process.current_process(), "_inheriting", True, raising=False
    )
    script_globals = {"__name__": "__mp_main__", "Database": Database}
    script = "async def main():\n    await Database('sqlite+aiosqlite:///never.sqlite3').open()"
    exec(script, script_globals)  # noqa: S102 - the script's code, as the worker runs it
    with pytest.raises(ScriptRerun, match="never.sqlite3 was opened by a worker process"):
        await script_globals["main"]()  # type: ignore[operator]


async def test_outside_the_main_script_s_code_a_worker_starting_may_open_one(
    migrated_sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """multiprocessing is also `_inheriting` while it unpickles the child's target and its
    arguments, which may open a database of their own."""
    monkeypatch.setattr(
        multiprocessing.process.current_process(), "_inheriting", True, raising=False
    )
    async with Database(migrated_sqlite_url) as db:
        assert await db.strategies.list() == []
