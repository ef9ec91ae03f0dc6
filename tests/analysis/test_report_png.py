"""The picture report: the price panel when the backtest's bars are found, numbers with
thousands separators, and legends that never cover what their panel draws."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantflow_async import Database
from quantflow_async.analysis import load_report
from quantflow_async.analysis.report import report_figure

from .support import backtest_of_file, write_bars_csv

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


async def test_the_picture_has_a_price_panel_over_the_equity_and_drawdown(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    backtest = await backtest_of_file(db, strategy_id, write_bars_csv(tmp_path / "b.csv", 800))
    figure = report_figure(await load_report(db, backtest.id))
    labels = [axes.get_ylabel() for axes in figure.axes]
    assert labels == ["price", "equity (the stored equity curve)", "drawdown %"]
    price = figure.axes[0]
    marks = [c for c in price.collections if c.get_label().startswith(("buys", "sells"))]
    marked = sum(len(c.get_offsets()) for c in marks)
    assert marked == await db.trades.count(backtest_id=backtest.id)


async def test_without_its_bars_the_picture_has_equity_and_drawdown_only(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    data = write_bars_csv(tmp_path / "gone.csv", 300)
    backtest = await backtest_of_file(db, strategy_id, data)
    data.unlink()
    report = await load_report(db, backtest.id)
    assert report.price.candles is None
    assert report.price.reason == f"its bars file {str(data)!r} is not there"
    assert len(report_figure(report).axes) == 2


async def test_money_is_labelled_with_thousands_separators(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    backtest = await backtest_of_file(db, strategy_id, write_bars_csv(tmp_path / "b.csv", 800))
    figure = report_figure(await load_report(db, backtest.id))
    figure.canvas.draw()
    equity = [label.get_text() for label in figure.axes[1].get_yticklabels()]
    assert equity and all("," in text for text in equity if float(text.replace(",", "")) >= 1e4)
    assert any(text.endswith(",000") for text in equity), equity
    assert not figure.axes[1].yaxis.get_offset_text().get_text()  # no "1e5" above the axis


async def test_no_legend_covers_its_panel(tmp_path: Path, db: Database, strategy_id: int) -> None:
    backtest = await backtest_of_file(db, strategy_id, write_bars_csv(tmp_path / "b.csv", 800))
    figure = report_figure(await load_report(db, backtest.id))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = 0
    for axes in figure.axes:
        legend = axes.get_legend()
        if legend is None:
            continue
        legends += 1
        box, panel = legend.get_window_extent(renderer), axes.get_window_extent(renderer)
        assert box.y0 >= panel.y1 - 1, (axes.get_ylabel(), box, panel)  # wholly above it
    assert legends == 2  # the price's and the equity's
