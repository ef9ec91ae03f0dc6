"""./scripts/demo, reduced to short markets (DEMO_BARS), on a database of its own: it sweeps,
prints the best configs, draws the best one, and runs again on the same file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

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


def test_the_demo_stores_96_backtests_prints_the_best_five_and_draws_the_first(
    tmp_path: Path,
) -> None:
    result = demo(tmp_path)
    assert result.returncode == 0, result.stderr
    header, *rows = [line.split("\t") for line in result.stdout.splitlines()[-6:]]
    assert header[:4] == ["rank", "backtest", "data", "parameters"]
    assert len(rows) == 5
    assert stored(tmp_path, "SELECT status, count(*) FROM backtests GROUP BY 1") == [
        ("completed", 96)
    ]
    ((fills,),) = stored(tmp_path, "SELECT count(*) FROM trades")
    assert f"96 backtests completed, {fills:,} fills stored" in result.stderr
    ((best,),) = stored(
        tmp_path,
        "SELECT id FROM backtests ORDER BY CAST(json_extract(metrics, '$.return_pct') AS REAL) "
        "DESC LIMIT 1",
    )
    assert rows[0][1] == str(best)
    assert f"drawing backtest {best}, the best by return_pct" in result.stderr
    assert (tmp_path / "best.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []  # its CSV folder is removed


def test_the_demo_runs_again_on_the_same_database(tmp_path: Path) -> None:
    first, second = demo(tmp_path), demo(tmp_path)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert stored(tmp_path, "SELECT name FROM strategies") == [("sma_cross",)]
    assert stored(tmp_path, "SELECT status, count(*) FROM backtests GROUP BY 1") == [
        ("completed", 192)
    ]
