"""`quantflow sweep --constraint 'fast < slow'`: a grid holding invalid combinations runs the
valid ones; `--grid` also takes a list of configs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli_backtest import assert_one_line_mistake, migrated, quantflow, write_bars

__all__ = ["migrated"]  # the fixture, used by name


def test_the_constraint_leaves_out_the_invalid_combinations(tmp_path: Path, migrated: str) -> None:
    data = write_bars(tmp_path / "goog.csv")
    grid = json.dumps({"fast": [5, 10, 20], "slow": [10, 20]})
    result = quantflow(
        "sweep", "sma_cross", "--grid", grid, "--constraint", "fast < slow", "--data",
        str(data), "--workers", "1", "--json", "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["completed"], document["failed"]) == (3, 0)
    assert document["excluded"] == [
        {"fast": 10, "slow": 10}, {"fast": 20, "slow": 10}, {"fast": 20, "slow": 20},
    ]  # fmt: skip


def test_without_it_the_invalid_combination_refuses_the_sweep(
    tmp_path: Path, migrated: str
) -> None:
    data = write_bars(tmp_path / "goog.csv")
    grid = json.dumps({"fast": [5, 20], "slow": [10]})
    result = quantflow(
        "sweep", "sma_cross", "--grid", grid, "--data", str(data), "--database-url", migrated,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "slow: must be > fast")


def test_a_constraint_that_is_not_allowed_is_one_line_before_anything_is_stored(
    tmp_path: Path, migrated: str
) -> None:
    data = write_bars(tmp_path / "goog.csv")
    result = quantflow(
        "sweep", "sma_cross", "--grid", '{"fast": [5], "slow": [10]}', "--constraint",
        "__import__('os').getcwd() != ''", "--data", str(data), "--database-url", migrated,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "calls not allowed")
    listed = quantflow("backtests", "list", "--json", "--database-url", migrated, cwd=tmp_path)
    assert json.loads(listed.stdout) == []


def test_a_list_of_configs_is_a_grid(tmp_path: Path, migrated: str) -> None:
    data = write_bars(tmp_path / "goog.csv")
    configs = [{"fast": 3, "slow": 20}, {"fast": 4, "slow": 10}]
    result = quantflow(
        "sweep", "sma_cross", "--grid", json.dumps(configs), "--data", str(data), "--workers",
        "1", "--json", "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["completed"] == 2
