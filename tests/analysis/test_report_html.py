"""`quantflow report ID -o report.html`: one page that works offline, opened in a real headless
Chromium. It loads with no error of any kind, and a screenshot shows every panel drawn.

The error check is itself tested on pages that fail on purpose, so a check that saw nothing
could not pass these tests.
"""

from __future__ import annotations

import io
import json
import re
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantflow_async import Database
from quantflow_async.analysis import write_report

from ..conftest import T0
from .chromium import CHROMIUM, Page, chromium_page
from .support import backtest_of_file, quantflow, write_bars_csv

pytestmark = [
    pytest.mark.parametrize("backend", ["sqlite"]),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium: ./scripts/test installs it"
    ),
]

PANELS = ("price", "equity", "drawdown", "pnl")
IDLE = "window.Bokeh !== undefined && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
BOXES = f"""JSON.stringify(Object.fromEntries({list(PANELS)!r}.map(name => {{
    const model = Bokeh.documents[0].get_model_by_name(name);
    const view = model && Bokeh.index.find_one(model);
    if (!view) return [name, null];
    const box = view.el.getBoundingClientRect();
    return [name, [box.left, box.top, box.right, box.bottom]];
}})))"""
WON, LOST = (0x00, 0x89, 0x7B), (0xD3, 0x2F, 0x2F)


async def _written_page(db: Database, strategy_id: int, folder: Path, bars: int) -> Path:
    """The page of a backtest over `bars` bars, written in this process."""
    backtest = await backtest_of_file(db, strategy_id, write_bars_csv(folder / "beta.csv", bars))
    await write_report(db, backtest.id, folder / "r.html")
    return folder / "r.html"


async def _report_page(db: Database, strategy_id: int, folder: Path, bars: int) -> Path:
    """The page of a backtest over `bars` bars, written by `quantflow report`."""
    backtest = await backtest_of_file(db, strategy_id, write_bars_csv(folder / "beta.csv", bars))
    done = quantflow(db.settings.database_url, "report", str(backtest.id), "-o", "r.html",
                     cwd=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote r.html: backtest"), done.stdout
    assert done.stderr == ""  # the price was found: no note about it
    return folder / "r.html"


async def _drawn(page: Page, path: Path, within: float = 20) -> None:
    await page.open(path.as_uri(), within=within)
    await page.wait_until(IDLE, within=within)


def _share_not_white(picture: Image.Image, box: list[float]) -> float:
    pixels = np.asarray(picture.convert("RGB").crop(tuple(round(v) for v in box)), dtype=int)
    return float((pixels.min(axis=2) < 235).mean())


def _pixels_of(picture: Image.Image, box: list[float], colour: tuple[int, int, int]) -> int:
    pixels = np.asarray(picture.convert("RGB").crop(tuple(round(v) for v in box)), dtype=int)
    return int((np.abs(pixels - np.array(colour)).max(axis=2) <= 10).sum())


async def test_the_page_loads_with_no_error_and_shows_every_panel(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    page_file = await _report_page(db, strategy_id, tmp_path, 2_000)
    async with chromium_page(1280, 1100) as page:
        await _drawn(page, page_file)
        boxes = json.loads(await page.evaluate(BOXES))
        picture = Image.open(io.BytesIO(await page.screenshot()))
        assert page.errors == []
    assert all(boxes[name] is not None for name in PANELS), boxes
    for name in PANELS:
        assert boxes[name][3] <= picture.height, (name, boxes[name])
        assert _share_not_white(picture, boxes[name]) > 0.03, name  # drawn, not blank
    for name in ("price", "pnl"):  # trades, in a winner's and a loser's colour
        assert _pixels_of(picture, boxes[name], WON) > 20, name
        assert _pixels_of(picture, boxes[name], LOST) > 20, name


@pytest.mark.slow  # hovers and clicks in a browser; the page's load is checked by default
async def test_each_trade_links_its_entry_and_exit_fills_across_the_panels(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    page_file = await _written_page(db, strategy_id, tmp_path, 2_000)
    fills = {trade.id async for trade in db.trades.stream()}
    async with chromium_page() as page:
        await _drawn(page, page_file)
        linked = await page.evaluate("""(() => {
            const doc = Bokeh.documents[0], trades = doc.get_model_by_name('trades');
            const panels = ['price', 'pnl'].map(name => doc.get_model_by_name(name).renderers
                .filter(r => r.data_source === trades).length);
            return {entries: Array.from(trades.data.entry_fill),
                    exits: Array.from(trades.data.exit_fill), panels,
                    open: Array.from(doc.get_model_by_name('open_trades').data.entry_fill)};
        })()""")
        assert page.errors == []
    assert linked["panels"][0] >= 2 and linked["panels"][1] >= 1  # one source, every panel
    assert set(linked["entries"]) | set(linked["exits"]) <= fills
    assert len(set(linked["exits"])) == len(linked["exits"]) > 10
    # Every fill opens a trade, closes one, or both; the last position is still open.
    assert set(linked["entries"]) | set(linked["exits"]) | set(linked["open"]) == fills
    assert len(linked["open"]) == 1


async def test_the_statistics_table_shows_every_stored_metric(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    page_file = await _written_page(db, strategy_id, tmp_path, 500)
    [backtest] = await db.backtests.list()
    async with chromium_page() as page:
        await _drawn(page, page_file)
        rows = await page.evaluate("""(() => {
            const model = Bokeh.documents[0].get_model_by_name('statistics');
            const view = Bokeh.index.find_one(model);
            return Array.from((view.shadow_el ?? view.el).querySelectorAll('tr'))
                .map(row => [row.cells[0].textContent, row.cells[1].textContent]);
        })()""")
        assert page.errors == []
    shown = dict(rows)
    assert backtest.metrics is not None
    for key, value in backtest.metrics.items():
        if value is not None:
            assert key.replace("_pct", " %").replace("_", " ") in shown, key
    assert shown["initial capital"] == "100,000.00"
    assert shown["trades"] == f"{backtest.metrics['trades']:,}"
    assert shown["return %"] == f"{backtest.metrics['return_pct']:.4g}"


async def test_the_page_needs_no_network(tmp_path: Path, db: Database, strategy_id: int) -> None:
    text = (await _written_page(db, strategy_id, tmp_path, 500)).read_text()
    assert re.findall(r"<(?:script|link)[^>]*(?:src|href)=", text) == []
    assert "Bokeh" in text


@pytest.mark.parametrize(
    "body, said",
    [
        ("<script>throw new Error('thrown on purpose')</script>", "thrown on purpose"),
        ("<script>console.error('said on purpose')</script>", "said on purpose"),
        ("<script src='missing.js'></script>", "missing.js"),
        ("<script>Promise.reject(new Error('rejected on purpose'))</script>", "rejected on"),
    ],
    ids=["uncaught exception", "console.error", "script not found", "unhandled rejection"],
)
async def test_the_error_check_catches_a_page_that_fails(
    tmp_path: Path, backend: str, body: str, said: str
) -> None:
    failing = tmp_path / "failing.html"
    failing.write_text(f"<!doctype html><html><body><p>hello</p>{body}</body></html>")
    async with chromium_page() as page:
        await page.open(failing.as_uri(), within=20)
        await page.wait_until("document.readyState === 'complete'", within=20)
        await page.evaluate("new Promise(done => setTimeout(done, 0))")  # a turn for rejections
        errors = page.errors
    assert any(said in error for error in errors), errors


async def test_without_bokeh_the_page_names_the_extra_to_install_and_writes_nothing(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    backtest = await backtest_of_file(db, strategy_id, write_bars_csv(tmp_path / "b.csv", 300))
    done = quantflow(db.settings.database_url, "report", str(backtest.id), "-o", "r.html",
                     cwd=tmp_path, missing="bokeh")  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "quantflow: error: an HTML report needs bokeh, which is not installed: "
        "pip install 'quantflow-async[analysis]'"
    ]
    assert not (tmp_path / "r.html").exists()


async def test_a_name_that_is_not_a_report_format_is_said_before_the_database_is_read(
    tmp_path: Path, backend: str
) -> None:
    done = quantflow(f"sqlite+aiosqlite:///{tmp_path}/none.sqlite3", "report", "1", "-o",
                     "r.htm", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    assert "'r.htm' is not a .png, .svg or .pdf file, nor an .html page" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
async def test_a_200000_bar_backtest_gives_a_light_page_that_loads(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    page_file = await _written_page(db, strategy_id, tmp_path, 200_000)
    assert page_file.stat().st_size < 6_000_000  # 10,000 candles, every trade, Bokeh inlined
    async with chromium_page(1280, 1100) as page:
        started = time.monotonic()
        await _drawn(page, page_file, within=60)
        drawn_in = time.monotonic() - started
        boxes = json.loads(await page.evaluate(BOXES))
        picture = Image.open(io.BytesIO(await page.screenshot()))
        assert page.errors == []
    assert drawn_in < 20
    assert all(_share_not_white(picture, boxes[name]) > 0.03 for name in PANELS)


@pytest.mark.slow  # zooms in a browser; the page's load is checked by default
async def test_zooming_one_panel_zooms_them_all_and_fits_the_price_to_what_is_in_view(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    page_file = await _written_page(db, strategy_id, tmp_path, 2_000)
    price = "Bokeh.documents[0].get_model_by_name('price')"
    async with chromium_page() as page:
        await _drawn(page, page_file)
        low, high = await page.evaluate(f"[{price}.y_range.start, {price}.y_range.end]")
        shared = await page.evaluate(f"""(() => {{
            const doc = Bokeh.documents[0], x = {price}.x_range, span = x.end - x.start;
            x.setv({{start: x.start + span * 0.4, end: x.start + span * 0.5}});
            return ['equity', 'drawdown', 'pnl']
                .every(name => doc.get_model_by_name(name).x_range === x);
        }})()""")
        # The price's scale follows in a callback Bokeh runs after the change.
        fitted = f"{price}.y_range.start > {low} || {price}.y_range.end < {high}"
        await page.wait_until(fitted, within=5)
        start, end = await page.evaluate(f"[{price}.y_range.start, {price}.y_range.end]")
        assert page.errors == []
    assert shared
    assert low <= start < end <= high and end - start < high - low


async def test_a_name_with_markup_is_shown_as_text(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    name = "<img src=x onerror=\"console.error('ran')\"> & $1"
    backtest = await db.backtests.create(
        strategy_id=strategy_id, name=name, start_date=T0, end_date=T0 + timedelta(days=1),
        initial_capital="10000",
    )  # fmt: skip
    curve = {"time": [T0.timestamp(), T0.timestamp() + 86_400], "equity": [10_000.0, 9_000.0]}
    await db.backtests.save_results(backtest.id, results={"equity_curve": curve})
    await write_report(db, backtest.id, tmp_path / "r.html")
    async with chromium_page() as page:
        await _drawn(page, tmp_path / "r.html")
        header = await page.evaluate("""(() => {
            const model = Bokeh.documents[0].get_model_by_name('header');
            const view = Bokeh.index.find_one(model);
            return [(view.shadow_el ?? view.el).textContent, document.title];
        })()""")
        assert page.errors == []
    assert f"backtest {backtest.id}: {name} (pending)" in header[0]
    assert header[1] == f"backtest {backtest.id}: {name} (pending)"
