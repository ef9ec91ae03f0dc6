"""./scripts/demo, reduced to short markets (DEMO_BARS), on a database of its own: it sweeps,
prints the best configs, draws the best one, and runs again on the same file. The first run
is made once, for both tests."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def demo(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTFLOW_", "DEMO_"))}
    variables = {
        "QUANTFLOW_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'demo.sqlite3'}",
        "DEMO_BARS": "1500",
        "DEMO_REPORT": str(folder / "best.png"),
        "TMPDIR": str(folder),  # where the demo makes the folder of its CSV files
    }
    return subprocess.run(
        [str(ROOT / "scripts" / "demo")], cwd=folder, env={**env, **variables},
        capture_output=True, text=True, timeout=110,
    )  # fmt: skip


def stored(folder: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(folder / "demo.sqlite3") as connection:
        return connection.execute(sql).fetchall()


@dataclass(frozen=True)
class Run:
    """A run of the demo, and what its database held right after it."""

    result: subprocess.CompletedProcess[str]
    statuses: list[tuple[object, ...]]
    fills: object
    best: object


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def first(folder: Path) -> Run:
    """The demo on a new database: run once for the tests of this module."""
    result = demo(folder)
    assert result.returncode == 0, result.stderr
    ((fills,),) = stored(folder, "SELECT count(*) FROM trades")
    ((best,),) = stored(
        folder,
        "SELECT id FROM backtests ORDER BY CAST(json_extract(metrics, '$.return_pct') AS REAL) "
        "DESC LIMIT 1",
    )
    statuses = stored(folder, "SELECT status, count(*) FROM backtests GROUP BY 1")
    return Run(result, statuses, fills, best)


@pytest.mark.slow  # the demo script: 96 backtests in a new process, then a picture
def test_the_demo_stores_96_backtests_prints_the_best_five_and_draws_the_first(
    folder: Path, first: Run
) -> None:
    result = first.result
    header, *rows = [line.split("\t") for line in result.stdout.splitlines()[-6:]]
    assert header[:4] == ["rank", "backtest", "data", "parameters"]
    assert len(rows) == 5
    assert first.statuses == [("completed", 96)]
    assert f"96 backtests completed, {first.fills:,} fills stored" in result.stderr
    assert rows[0][1] == str(first.best)
    assert f"drawing backtest {first.best}, the best by return_pct" in result.stderr
    assert (folder / "best.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p for p in folder.iterdir() if p.is_dir()] == []  # its CSV folder is removed


@pytest.mark.slow  # the demo script again
@pytest.mark.slow  # a second whole run of the demo
def test_the_demo_runs_again_on_the_same_database(folder: Path, first: Run) -> None:
    second = demo(folder)
    assert first.result.returncode == 0, first.result.stderr
    assert second.returncode == 0, second.stderr
    assert stored(folder, "SELECT name FROM strategies") == [("sma_cross",)]
    assert stored(folder, "SELECT status, count(*) FROM backtests GROUP BY 1") == [
        ("completed", 192)
    ]
