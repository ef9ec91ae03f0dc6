"""The heatmap's HTML page in a real headless Chromium: it loads with no error of any kind,
draws its cells in colour, and names each cell's values on hover."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantflow_async.analysis.heatmap import draw_heatmap, heatmap_of

from .chromium import CHROMIUM, Page, chromium_page

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: ./scripts/test installs it"
)

ROWS = [
    ({"fast": fast, "slow": slow, "k": k}, {"sharpe": fast / 10 + slow / 100 - k})
    for fast in (2, 5, 10, 20)
    for slow in (30, 60, 90)
    for k in (0, 1)
]
IDLE = "window.Bokeh !== undefined && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
BOX = """JSON.stringify((() => {
    const view = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('heatmap'));
    const box = view.el.getBoundingClientRect();
    return [box.left, box.top, box.right, box.bottom];
})())"""


async def _drawn(page: Page, path: Path) -> None:
    await page.open(path.as_uri(), within=20)
    await page.wait_until(IDLE, within=20)


async def test_the_page_loads_with_no_error_and_draws_the_cells(tmp_path: Path) -> None:
    draw_heatmap(heatmap_of(ROWS, "fast", "slow", "sharpe", title="sweep 1"), tmp_path / "h.html")
    async with chromium_page(1000, 800) as page:
        await _drawn(page, tmp_path / "h.html")
        box = json.loads(await page.evaluate(BOX))
        picture = Image.open(io.BytesIO(await page.screenshot()))
        cells = await page.evaluate("""(() => {
            const plot = Bokeh.documents[0].get_model_by_name('heatmap');
            const source = plot.renderers[0].data_source;
            return {x: Array.from(source.data.x), shown: Array.from(source.data.shown),
                    tooltips: plot.toolbar.tools.filter(t => t.tooltips).map(t => t.tooltips)};
        })()""")
        assert page.errors == []
    pixels = np.asarray(picture.convert("RGB").crop(tuple(round(v) for v in box)), dtype=int)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    assert len(colours) > 12  # twelve cells of a palette, not a blank page
    assert cells["x"][:4] == ["2", "5", "10", "20"]
    assert cells["shown"][0] == f"{2 / 10 + 30 / 100:,.4g}"  # k aggregated by max: k = 0
    assert ["sharpe", "@shown"] in cells["tooltips"][0]
