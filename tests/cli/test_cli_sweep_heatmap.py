"""`quantflow sweep heatmap ID -x P -y Q`: a stored sweep's statistic over two parameters, as a
picture or a page; each mistake one line, before any file is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from quantflow_async.analysis.heatmap import AGGREGATIONS
from quantflow_async.cli.sweep_heatmap import AGGREGATIONS as LISTED
from tests.cli.test_cli_backtest import assert_one_line_mistake, migrated, quantflow, write_bars

__all__ = ["migrated"]  # the fixture, used by name


@pytest.fixture
def sweep_id(tmp_path: Path, migrated: str) -> int:
    data = write_bars(tmp_path / "goog.csv", 300)
    done = quantflow(
        "sweep", "sma_cross", "--grid", json.dumps({"fast": [3, 5, 8], "slow": [20, 30]}),
        "--data", str(data), "--workers", "1", "--json", "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["sweep_id"])


def heatmap(url: str, sweep: int, *args: str, cwd: Path) -> Any:
    return quantflow("sweep", "heatmap", str(sweep), *args, "--database-url", url, cwd=cwd)


@pytest.mark.parametrize("suffix", ["png", "svg", "html"])
def test_a_heatmap_is_written_and_named_on_one_line(
    tmp_path: Path, migrated: str, sweep_id: int, suffix: str
) -> None:
    drawn = heatmap(
        migrated, sweep_id, "-x", "fast", "-y", "slow", "--metric", "return_pct", "--agg",
        "median", "-o", f"heat.{suffix}", cwd=tmp_path,
    )  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.startswith(
        f"wrote heat.{suffix}: sweep {sweep_id}, return_pct over 3 fast x 2 slow, 6 backtests"
    )
    if suffix == "png":
        with Image.open(tmp_path / "heat.png") as image:
            assert image.format == "PNG"
    elif suffix == "html":
        assert "Bokeh" in (tmp_path / "heat.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-x", "fats", "-y", "slow"), "x: no parameter named 'fats' (parameters: fast, slow)"),
        (("-x", "fast", "-y", "slow", "--metric", "sharp"), "'sharp' is not a stored statistic"),
        (("-x", "fast", "-y", "fast"), "y: is the same parameter as x ('fast')"),
        (("-x", "fast", "-y", "slow", "-o", "heat.txt"), "'heat.txt' is not a .png"),
        (("-x", "fast", "-y", "slow", "--agg", "sum"), "argument --agg: invalid choice: 'sum'"),
    ],
)
def test_a_mistake_is_one_line_and_writes_no_file(
    tmp_path: Path, migrated: str, sweep_id: int, args: tuple[str, ...], message: str
) -> None:
    output = () if "-o" in args else ("-o", "heat.png")
    assert_one_line_mistake(heatmap(migrated, sweep_id, *args, *output, cwd=tmp_path), message)
    assert not (tmp_path / "heat.png").exists()


def test_a_sweep_that_is_not_stored_is_one_line(tmp_path: Path, migrated: str) -> None:
    result = heatmap(migrated, 99, "-x", "fast", "-y", "slow", "-o", "heat.png", cwd=tmp_path)
    assert_one_line_mistake(result, "sweep with id=99 does not exist")


def test_the_aggregations_the_command_lists_are_the_librarys() -> None:
    assert LISTED == tuple(AGGREGATIONS)
