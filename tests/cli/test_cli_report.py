"""`quantflow report BACKTEST_ID -o FILE.png`: the equity curve, its drawdowns shaded, its trades
marked; or one line and no file.

The pictures are read back: the colours of the shading and of the buy and sell markers are
counted, so a report that forgot one of them fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from quantflow_async import Database
from quantflow_async.backtest import run_stored_backtest, synthetic_bars

from ..conftest import T0, make_fill
from .test_cli import assert_one_line_mistake, clean_env
from .test_cli_listings import run, sqlite_only

SAID = re.compile(
    r"^wrote (\S+): backtest (\d+), ([\d,]+) points of (.+), ([\d,]+) fills marked, "
    r"max drawdown (-?[\d.]+)%$"
)
BUY, SELL = (44, 160, 44), (255, 127, 14)
SHADED = (245, 201, 201)  # the drawdown's red at 25% over white
CURVE = {"time": [1_704_067_200, 1_704_153_600], "equity": [10_000.0, 9_000.0]}


def pixels_of(picture: Path, colour: tuple[int, int, int]) -> int:
    """How many pixels of the picture have `colour` (give or take antialiasing)."""
    rgb = image.imread(picture)[:, :, :3] * 255
    return int((np.abs(rgb - np.array(colour)).max(axis=2) <= 4).sum())


def report(url: str, backtest_id: int, output: str, cwd: Path) -> re.Match[str]:
    result = run(url, "report", str(backtest_id), "-o", output, cwd=cwd)
    assert result.returncode == 0, result.stderr
    said = SAID.match(result.stdout.strip())
    assert said, result.stdout
    return said


async def test_a_report_draws_the_stored_curve_and_marks_every_trade(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    backtest = await run_stored_backtest(
        db, "sma_cross", synthetic_bars(400, seed=3), {"fast": 5, "slow": 20},
        strategy_id=strategy_id, cash=10_000, commission=0.001,
    )  # fmt: skip
    assert backtest.results is not None and backtest.metrics is not None
    said = report(db.settings.database_url, backtest.id, "report.png", tmp_path)
    points, source, marked, deepest = said.group(3, 4, 5, 6)
    assert int(points.replace(",", "")) == backtest.results["equity_curve_points"]
    assert source == "the stored equity curve"
    assert int(marked.replace(",", "")) == await db.trades.count(backtest_id=backtest.id) > 0
    assert float(deepest) == pytest.approx(backtest.metrics["max_drawdown_pct"], abs=0.01)
    picture = tmp_path / "report.png"
    assert image.imread(picture).shape[:2] == (700, 1200)
    assert pixels_of(picture, BUY) > 0 and pixels_of(picture, SELL) > 0
    assert pixels_of(picture, SHADED) > 1000


@sqlite_only
async def test_a_curve_that_never_falls_has_nothing_shaded_and_no_marker_without_trades(
    tmp_path: Path, db: Database, backtest_id: int
) -> None:
    curve = {"time": [1_704_067_200 + 86_400 * n for n in range(50)],
             "equity": [10_000.0 + 10 * n for n in range(50)]}  # fmt: skip
    await db.backtests.save_results(backtest_id, results={"equity_curve": curve})
    said = report(db.settings.database_url, backtest_id, "rising.png", tmp_path)
    assert said.group(5, 6) == ("0", "0.00")
    picture = tmp_path / "rising.png"
    assert pixels_of(picture, SHADED) == 0
    assert pixels_of(picture, BUY) == pixels_of(picture, SELL) == 0


@sqlite_only
async def test_without_a_stored_curve_the_report_follows_the_trades_pnl_less_fees(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    # Capital 10,000; after each trade: 10,100, then 9,799 (pnl -300, fee 1), then 9,849.
    steps = [("100", None), ("-300", "1"), ("50", None)]
    await db.trades.insert_many([
        make_fill(strategy_id, n, backtest_id=backtest_id, pnl=pnl, fee=fee,
                  executed_at=T0 + timedelta(days=n + 1))
        for n, (pnl, fee) in enumerate(steps)
    ])  # fmt: skip
    said = report(db.settings.database_url, backtest_id, "trades.png", tmp_path)
    assert said.group(3, 4, 5) == ("4", "the trades' realized pnl less fees (no equity curve "
                                   "stored)", "3")  # fmt: skip
    assert float(said.group(6)) == pytest.approx((9_799 / 10_100 - 1) * 100, abs=0.005)
    assert pixels_of(tmp_path / "trades.png", SHADED) > 0


@sqlite_only
@pytest.mark.parametrize(
    "given, message",
    [
        (["99", "-o", "r.png"], "backtest with id=99 does not exist"),
        (["{backtest}", "-o", "r.jpg"], "'r.jpg' is not a .png, .svg or .pdf file"),
        (["{backtest}", "-o", "missing/r.png"], "cannot write missing/r.png: No such file"),
        (["{backtest}"], "the following arguments are required: -o/--output"),
        (["x", "-o", "r.png"], "invalid int value: 'x'"),
    ],
    ids=["unknown backtest", "not a picture", "missing folder", "no output",
         "id not a number"],
)  # fmt: skip
async def test_a_mistake_is_one_line_and_leaves_no_file(
    tmp_path: Path, db: Database, backtest_id: int, given: list[str], message: str
) -> None:
    await db.backtests.save_results(backtest_id, results={"equity_curve": CURVE})
    folder = tmp_path / "work"
    folder.mkdir()
    args = [str(backtest_id) if part == "{backtest}" else part for part in given]
    result = run(db.settings.database_url, "report", *args, cwd=folder)
    assert_one_line_mistake(result, message)
    assert os.listdir(folder) == []


@sqlite_only
async def test_a_backtest_with_nothing_to_draw_is_one_line_and_leaves_no_file(
    tmp_path: Path, db: Database, backtest_id: int
) -> None:
    result = run(db.settings.database_url, "report", str(backtest_id), "-o", "r.png",
                 cwd=tmp_path)  # fmt: skip
    assert_one_line_mistake(
        result, f"backtest {backtest_id} has no equity curve stored and no trades to draw one "
        "from (status pending)",
    )  # fmt: skip
    assert not (tmp_path / "r.png").exists()


@sqlite_only
async def test_without_matplotlib_the_report_names_the_extra_to_install(
    tmp_path: Path, db: Database, backtest_id: int
) -> None:
    await db.backtests.save_results(backtest_id, results={"equity_curve": CURVE})
    folder = tmp_path / "work"
    folder.mkdir()
    result = run_without_matplotlib(db.settings.database_url, str(backtest_id), cwd=folder)
    assert_one_line_mistake(
        result, "drawing a report needs matplotlib, which is not installed: "
        "pip install 'quantflow-async[analysis]'",
    )  # fmt: skip
    assert os.listdir(folder) == []


def run_without_matplotlib(
    url: str, backtest_id: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    # A None in sys.modules makes `import matplotlib` fail as it does where it is not installed.
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from quantflow_async.cli import main; sys.exit(main())"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "report", backtest_id, "-o", "r.png"], cwd=cwd,
        env=clean_env(QUANTFLOW_DATABASE_URL=url), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
