"""examples/run_backtest.py and examples/sweep.py run as a newcomer runs them: no arguments,
in a fresh folder, each within a minute; what they print is what they stored."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from quantflow_async.backtest import expand_grid, run_backtest
from tests.cli.test_cli_backtest import write_bars

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> ModuleType:
    """The example's module, for its constants (its `__main__` guard keeps it from running)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, *args: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    url = f"sqlite+aiosqlite:///{folder / 'example.sqlite3'}"
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        cwd=folder, env={**env, "QUANTFLOW_DATABASE_URL": url}, capture_output=True, text=True,
        timeout=60,  # the promise: each example finishes in under a minute
    )  # fmt: skip


def query(folder: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(folder / "example.sqlite3") as connection:
        return connection.execute(sql).fetchall()


def test_run_backtest_stores_one_completed_backtest_with_the_engines_fills(
    tmp_path: Path,
) -> None:
    result = run("run_backtest", folder=tmp_path)
    assert result.returncode == 0, result.stderr
    module = example("run_backtest")
    bars, symbol = module.load_bars([])
    expected = run_backtest(module.STRATEGY, bars, module.PARAMETERS, 10_000, 0.001)
    fills = len(expected.executions)
    assert f"backtest 1 (completed): {fills:,} fills stored" in result.stdout
    assert query(tmp_path, "SELECT status FROM backtests") == [("completed",)]
    assert query(tmp_path, "SELECT symbol, count(*) FROM trades GROUP BY symbol") == [
        (symbol, fills)
    ]
    shown = re.search(r"return_pct\s+(-?[\d,.]+)", result.stdout)
    assert shown and float(shown.group(1).replace(",", "")) == round(
        expected.metrics["return_pct"], 2
    )
    assert not (tmp_path / "dev.sqlite3").exists()  # the URL from the environment was used


def test_run_backtest_takes_a_csv_and_names_the_symbol_after_it(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "goog.csv", 800)
    result = run("run_backtest", str(data), folder=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "800 bars of GOOG" in result.stdout
    assert query(tmp_path, "SELECT DISTINCT symbol FROM trades") == [("GOOG",)]


@pytest.mark.slow  # the example script, twice in new processes
def test_run_backtest_twice_reuses_its_strategy_and_adds_a_backtest(tmp_path: Path) -> None:
    for _ in range(2):
        result = run("run_backtest", folder=tmp_path)
        assert result.returncode == 0, result.stderr
    assert query(tmp_path, "SELECT name FROM strategies") == [("sma_cross",)]
    assert query(tmp_path, "SELECT id, status FROM backtests") == [
        (1, "completed"),
        (2, "completed"),
    ]


@pytest.mark.slow  # the example script, a sweep in a new process
def test_sweep_stores_every_config_on_every_market_and_prints_the_best_by_return(
    tmp_path: Path,
) -> None:
    result = run("sweep", folder=tmp_path)
    assert result.returncode == 0, result.stderr
    module = example("sweep")
    configs = expand_grid(module.GRID)
    assert query(tmp_path, "SELECT status, count(*) FROM backtests GROUP BY status") == [
        ("completed", 3 * len(configs))
    ]
    (stored,) = query(tmp_path, "SELECT count(*) FROM trades")[0]
    assert f"{stored:,} fills stored in" in result.stdout
    per_symbol = Counter(dict(query(tmp_path, "SELECT symbol, count(*) FROM trades GROUP BY 1")))
    assert per_symbol == {
        symbol: sum(
            len(run_backtest("sma_cross", bars, config, 10_000, 0.001).executions)
            for config in configs
        )
        for symbol, bars in module.make_markets().items()
    }

    table = result.stdout.split("the best 5 configs by return:\n")[1].splitlines()[1:]
    assert len(table) == module.TOP
    returns = [float(line.split()[4]) for line in table]
    assert returns == sorted(returns, reverse=True)
    best_id, market, fast, slow = table[0].split()[:4]
    (best_return,) = query(
        tmp_path,
        "SELECT max(CAST(json_extract(metrics, '$.return_pct') AS REAL)) FROM backtests",
    )[0]
    assert returns[0] == round(best_return, 2)
    (config,) = query(tmp_path, f"SELECT json_extract(config, '$.parameters') FROM backtests "
                                f"WHERE id = {int(best_id)}")[0]  # fmt: skip
    assert config == f'{{"fast":{fast},"slow":{slow}}}'
