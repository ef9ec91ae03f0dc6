"""`quantflow backtest run` on a bars file, called in this process (`tests.support.cli`);
the first test runs it as a person does, as a new process."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from quantflow_async.backtest import read_bars, run_backtest, synthetic_bars
from tests.support import cli
from tests.support.databases import migrated_sqlite

METRIC_KEYS = {
    "trades", "final_equity", "return_pct", "max_drawdown_pct", "win_rate_pct",
    "profit_factor", "sharpe", "sortino", "fees",
}  # fmt: skip


def quantflow(*args: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """`quantflow ARGS` without the QUANTFLOW_ variables of this environment, plus `variables`."""
    return cli.quantflow(*args, cwd=cwd, env=environment(variables))


def quantflow_process(*args: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """The same, as a new process."""
    return cli.quantflow_process(*args, cwd=cwd, env=environment(variables))


def environment(variables: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without its QUANTFLOW_ variables, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    return {**env, **(variables or {})}


def write_bars(path: Path, count: int = 500, minutes: bool = False) -> Path:
    """`count` daily bars as CSV (or minute bars, each time in full)."""
    interval = timedelta(minutes=1) if minutes else timedelta(days=1)
    bars = synthetic_bars(count, seed=4, interval=interval)
    lines = ["date,open,high,low,close,volume"]
    columns = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    for i in range(count):
        prices = ",".join(repr(float(column[i])) for column in columns)
        when = bars.time_at(i).isoformat() if minutes else bars.time_at(i).date()
        lines.append(f"{when},{prices}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def migrated(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "db.sqlite3")


def assert_one_line_mistake(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_json_output_ends_with_the_backtest_id_and_its_metrics(
    tmp_path: Path, migrated: str
) -> None:
    data = write_bars(tmp_path / "goog.csv")
    result = quantflow_process(
        "backtest", "run", "sma_cross", "--data", str(data), "--config", '{"fast": 5, "slow": 20}',
        "--cash", "10000", "--commission", "0.002", "--json", "--database-url", migrated,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout.strip().splitlines()[-1])
    expected = run_backtest(
        "sma_cross", read_bars(data), {"fast": 5, "slow": 20}, 10_000, 0.002, symbol="GOOG"
    )
    assert document["backtest_id"] == 1
    assert METRIC_KEYS <= set(document)
    assert {key: document[key] for key in METRIC_KEYS} == {
        key: expected.metrics[key] for key in METRIC_KEYS
    }
    counted = quantflow(
        "count-trades", "--backtest-id", "1", "--symbol", "GOOG", "--database-url", migrated,
        cwd=tmp_path,
    )  # fmt: skip
    assert counted.stdout.strip() == str(len(expected.executions))


def test_the_table_names_the_backtest_and_its_metrics(tmp_path: Path, migrated: str) -> None:
    data = write_bars(tmp_path / "bars.csv")
    result = quantflow(
        "backtest", "run", "bollinger", "--data", str(data), "--name", "first try",
        cwd=tmp_path, QUANTFLOW_DATABASE_URL=migrated,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for word in ("first try", "completed", "final_equity", "max_drawdown_pct", "sharpe"):
        assert word in result.stdout


def test_a_database_without_the_schema_says_to_migrate(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    data = write_bars(tmp_path / "bars.csv")
    result = quantflow(
        "backtest", "run", "sma_cross", "--data", str(data),
        "--database-url", f"sqlite+aiosqlite:///{empty}", cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "quantflow migrate")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["macd"], "unknown strategy 'macd'"),
        (["sma_cross", "--config", "{fast: 5}"], "is not valid JSON"),
        (["sma_cross", "--config", '{"fats": 5}'], "fats: not a parameter of SmaCross"),
        (["sma_cross", "--config", '{"fast": 50, "slow": 20}'], "slow: must be > fast"),
    ],
    ids=["unknown strategy", "bad JSON", "unknown key", "bad value"],
)
def test_a_mistake_is_one_line_and_leaves_no_file(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    data = write_bars(tmp_path / "bars.csv")
    url = f"sqlite+aiosqlite:///{tmp_path / 'never.sqlite3'}"
    result = quantflow(
        "backtest", "run", arguments[0], "--data", str(data), *arguments[1:],
        "--database-url", url, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, message)
    assert sorted(os.listdir(tmp_path)) == ["bars.csv"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        ("date,open,high,low\n2024-01-01,1,2,1\n", "column 'close'"),
        ("date,open,high,low,close\n2024-01-01,1,2,0.5,1\n", "bars.csv: one bar: a stored"),
    ],
    ids=["missing file", "missing column", "one bar"],
)
def test_an_unreadable_bars_file_is_one_line(
    tmp_path: Path, migrated: str, content: str | None, message: str
) -> None:
    data = tmp_path / "bars.csv"
    if content is not None:
        data.write_text(content)
    result = quantflow(
        "backtest", "run", "sma_cross", "--data", str(data), "--database-url", migrated,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, message)
    assert quantflow("count-trades", "--database-url", migrated, cwd=tmp_path).stdout == "0\n"
    listed = quantflow("strategies", "list", "--database-url", migrated, cwd=tmp_path)
    assert "sma_cross" not in listed.stdout  # the database was never written to
