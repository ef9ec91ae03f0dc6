"""A report's words are drawn as they are stored: a `$` in a backtest's name is a dollar sign,
never the start of a formula."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import matplotlib
import pytest

from quantflow_async import Database
from quantflow_async.analysis import draw_report, load_report

from ..conftest import T0
from .test_cli_listings import run, sqlite_only

CURVE = {"time": [1_704_067_200, 1_704_153_600], "equity": [10_000.0, 9_000.0]}


async def _named(db: Database, strategy_id: int, name: str) -> int:
    backtest = await db.backtests.create(
        strategy_id=strategy_id,
        name=name,
        start_date=T0,
        end_date=T0 + timedelta(days=1),
        initial_capital="10000",
    )
    await db.backtests.save_results(backtest.id, results={"equity_curve": CURVE})
    return backtest.id


@sqlite_only
@pytest.mark.parametrize("name", ["fast $x^$ slow", r"pays $\frac{1}{$ a day"])
async def test_a_dollar_in_the_name_does_not_break_the_report(
    tmp_path: Path, db: Database, strategy_id: int, name: str
) -> None:
    backtest_id = await _named(db, strategy_id, name)
    result = run(db.settings.database_url, "report", str(backtest_id), "-o", "r.png",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.png").stat().st_size > 0


@sqlite_only
async def test_the_name_is_drawn_letter_for_letter(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    name = "from $1 to $2"  # as a formula it would lose its spaces and its dollar signs
    report = await load_report(db, await _named(db, strategy_id, name))
    picture = tmp_path / "r.svg"
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # words kept as <text>, not paths
        draw_report(report, picture)
    words = re.findall(r"<text[^>]*>([^<]*)</text>", picture.read_text())
    assert any(name in text for text in words), words
