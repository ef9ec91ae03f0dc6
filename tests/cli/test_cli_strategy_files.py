"""`quantflow backtest run path/to/file.py:ClassName`: a strategy of the user's own, run from
the command line, stored under its reference; `quantflow strategies available` lists what
can run."""

from __future__ import annotations

import json
from pathlib import Path

from quantflow_async import Database
from tests.cli.test_cli_backtest import assert_one_line_mistake, migrated, quantflow, write_bars

__all__ = ["migrated"]  # the fixture, used by name

MY_STRATEGY = """\
from quantflow_async.backtest import Strategy


class HoldHalf(Strategy):
    size: float = 0.5

    def next(self) -> None:
        if not self.position:
            self.buy(size=self.size)
"""


async def stored_config(url: str, backtest_id: int) -> dict[str, object]:
    async with Database(url) as db:
        backtest = await db.backtests.get(backtest_id)
    assert backtest.config is not None
    return dict(backtest.config)


async def test_a_strategy_in_a_file_runs_and_is_stored_under_its_reference(
    tmp_path: Path, migrated: str
) -> None:
    (tmp_path / "my_strategy.py").write_text(MY_STRATEGY)
    data = write_bars(tmp_path / "goog.csv")
    result = quantflow(
        "backtest", "run", "my_strategy.py:HoldHalf", "--data", str(data), "--cash", "10000",
        "--commission", "0.002", "--config", '{"size": 0.25}', "--json", "--database-url",
        migrated, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "completed" and document["fills"] == 1
    config = await stored_config(migrated, document["backtest_id"])
    assert config["strategy"] == f"{(tmp_path / 'my_strategy.py').resolve()}:HoldHalf"
    assert config["parameters"] == {"size": 0.25}


STRATEGY_WITH_A_HELPER = """\
from quantflow_async.backtest import Strategy

from hold_sizes_beside import SIZE  # a module beside this file


class HoldSized(Strategy):
    size: float = SIZE

    def init(self) -> None:
        import hold_sizes_beside  # and once more where the workers run it

        self.size = min(self.size, hold_sizes_beside.SIZE)

    def next(self) -> None:
        if not self.position:
            self.buy(size=self.size)
"""


def test_a_strategy_file_imports_the_modules_beside_it_in_the_command_and_its_workers(
    tmp_path: Path, migrated: str
) -> None:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "hold_sized.py").write_text(STRATEGY_WITH_A_HELPER)
    (tmp_path / "strategies" / "hold_sizes_beside.py").write_text("SIZE = 0.25\n")
    data = write_bars(tmp_path / "goog.csv")
    result = quantflow(
        "sweep", "run", "strategies/hold_sized.py:HoldSized", "--data", str(data),
        "--grid", '{"size": [0.1, 0.2]}', "--json", "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout.splitlines()[-1])
    assert (document["completed"], document["failed"]) == (2, 0)


def test_a_missing_strategy_file_is_one_line_before_anything_is_stored(
    tmp_path: Path, migrated: str
) -> None:
    data = write_bars(tmp_path / "goog.csv")
    result = quantflow(
        "backtest", "run", "nowhere.py:HoldHalf", "--data", str(data), "--database-url",
        migrated, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "no such file: nowhere.py")
    listed = quantflow("backtests", "list", "--json", "--database-url", migrated, cwd=tmp_path)
    assert json.loads(listed.stdout) == []


def test_strategies_available_lists_the_built_in_ones_with_their_parameters(
    tmp_path: Path,
) -> None:
    result = quantflow("strategies", "available", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert found["sma_cross"]["source"] == "built-in"
    assert found["sma_cross"]["parameters"] == {
        "fast": {"type": "int", "default": 10},
        "slow": {"type": "int", "default": 20},
    }
