"""`quantflow sweep --report best.html` draws the best backtest's interactive page, as
`quantflow report` does; a name of no report format is refused before the sweep runs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli_backtest import assert_one_line_mistake, migrated, quantflow, write_bars

__all__ = ["migrated"]  # the fixture, used by name

GRID = json.dumps({"fast": [3, 5], "slow": [20]})


def test_the_best_backtest_s_page_is_written(tmp_path: Path, migrated: str) -> None:
    data = write_bars(tmp_path / "goog.csv")
    page = tmp_path / "best.html"
    result = quantflow(
        "sweep", "sma_cross", "--grid", GRID, "--data", str(data), "--workers", "1",
        "--report", str(page), "--json", "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["report"] == str(page)
    text = page.read_text()
    assert text.lstrip().lower().startswith("<!doctype html") and "Bokeh" in text


def test_a_report_name_of_no_format_is_refused_before_the_sweep(
    tmp_path: Path, migrated: str
) -> None:
    data = write_bars(tmp_path / "goog.csv")
    result = quantflow(
        "sweep", "sma_cross", "--grid", GRID, "--data", str(data), "--report",
        str(tmp_path / "best.txt"), "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "nor an .html page")
    listed = quantflow("backtests", "list", "--json", "--database-url", migrated, cwd=tmp_path)
    assert json.loads(listed.stdout) == []
