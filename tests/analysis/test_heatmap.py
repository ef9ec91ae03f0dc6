"""A sweep's heatmap from its backtests' parameters and metrics: one statistic over two
parameters, the others aggregated away, drawn as a picture or an interactive page."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from quantflow_async.analysis.heatmap import BINS, draw_heatmap, heatmap_of
from quantflow_async.errors import InvalidValue, StrategyConfigError

Row = tuple[dict[str, Any], dict[str, Any] | None]

# sharpe = fast + slow / 10 + k: k is the parameter aggregated away.
ROWS: list[Row] = [
    ({"fast": fast, "slow": slow, "k": k}, {"sharpe": fast + slow / 10 + k})
    for fast in (10, 5, 20)
    for slow in (40, 20)
    for k in (0.0, 1.0, 5.0)
]


@pytest.mark.parametrize(
    ("agg", "extra"), [("max", 5.0), ("min", 0.0), ("mean", 2.0), ("median", 1.0)]
)
def test_other_parameters_are_aggregated_by_the_chosen_function(agg: str, extra: float) -> None:
    heatmap = heatmap_of(ROWS, "fast", "slow", "sharpe", agg=agg)
    assert heatmap.xs == ("5", "10", "20")  # numbers in order, not as first seen
    assert heatmap.ys == ("20", "40")
    expected = np.array([[f + s / 10 + extra for f in (5, 10, 20)] for s in (20, 40)])
    np.testing.assert_allclose(heatmap.values, expected)
    assert heatmap.counts.tolist() == [[3, 3, 3], [3, 3, 3]]


def test_the_default_aggregation_is_max() -> None:
    assert heatmap_of(ROWS, "fast", "slow", "sharpe").agg == "max"


def test_a_cell_without_a_value_is_nan_and_backtests_without_one_are_counted() -> None:
    rows: list[Row] = [
        ({"fast": 5, "slow": 20}, {"sharpe": 1.5}),
        ({"fast": 5, "slow": 40}, {"sharpe": None}),  # no trades: no Sharpe ratio
        ({"fast": 10, "slow": 20}, {"sharpe": "1e400"}),  # too large for the store: its text
    ]
    heatmap = heatmap_of(rows, "fast", "slow", "sharpe")
    assert heatmap.values[0].tolist() == [1.5, math.inf]
    assert math.isnan(heatmap.values[1, 0]) and math.isnan(heatmap.values[1, 1])
    assert heatmap.counts.tolist() == [[1, 1], [1, 0]]


def test_choices_that_are_not_numbers_come_after_the_numbers() -> None:
    rows: list[Row] = [
        ({"mode": mode, "fast": 5}, {"sharpe": 1.0}) for mode in ("b", 3, None, "a", True)
    ]
    assert heatmap_of(rows, "mode", "fast", "sharpe").xs == (
        "3",
        "a",
        "b",
        "null",
        "true",
    )  # as JSON writes them


def test_many_numeric_values_are_cut_into_ranges_of_equal_width() -> None:
    rows: list[Row] = [
        ({"k": 0.5 + i / 100, "fast": i % 3}, {"sharpe": float(i)}) for i in range(200)
    ]
    heatmap = heatmap_of(rows, "k", "fast", "sharpe")
    assert len(heatmap.xs) == BINS
    assert heatmap.xs[0] == "0.5..0.5995" and heatmap.xs[-1] == "2.391..2.49"
    assert int(heatmap.counts.sum()) == 200


def test_many_whole_numbers_are_cut_into_ranges_of_whole_numbers() -> None:
    rows: list[Row] = [({"fast": fast, "k": 1}, {"sharpe": float(fast)}) for fast in range(2, 41)]
    heatmap = heatmap_of(rows, "fast", "k", "sharpe", agg="min")
    assert heatmap.xs[:2] == ("2..3", "4..5") and heatmap.xs[-1] == "40"
    assert len(heatmap.xs) == BINS
    assert heatmap.values[0, :2].tolist() == [2.0, 4.0]


@pytest.mark.parametrize(
    ("x", "y", "metric", "agg", "error", "message"),
    [
        ("fats", "slow", "sharpe", "max", InvalidValue, "x: no parameter named 'fats' "
         r"\(parameters: fast, k, slow\)"),
        ("fast", "slw", "sharpe", "max", InvalidValue, "y: no parameter named 'slw'"),
        ("fast", "fast", "sharpe", "max", InvalidValue, "y: is the same parameter as x"),
        ("fast", "slow", "sharp", "max", StrategyConfigError, "'sharp' is not a stored statistic"),
        ("fast", "slow", "sharpe", "sum", InvalidValue, "agg: must be one of max, mean, median"),
    ],
)  # fmt: skip
def test_a_bad_choice_is_one_line_naming_it(
    x: str, y: str, metric: str, agg: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        heatmap_of(ROWS, x, y, metric, agg=agg)
    assert "\n" not in str(raised.value)


def test_a_sweep_with_no_completed_backtest_has_no_heatmap() -> None:
    with pytest.raises(InvalidValue, match="sweep: has no completed backtest to draw"):
        heatmap_of([], "fast", "slow", "sharpe")


def test_a_statistic_no_backtest_has_is_refused_not_drawn_as_an_empty_grid() -> None:
    rows: list[Row] = [
        ({"fast": 5, "slow": 20}, {"sharpe": None}),  # no Sharpe ratio could be computed
        ({"fast": 10, "slow": 20}, {}),
    ]
    with pytest.raises(InvalidValue, match="metric: sharpe has no value in any of the 2 "):
        heatmap_of(rows, "fast", "slow", "sharpe")


def test_a_png_heatmap_opens_as_an_image(tmp_path: Path) -> None:
    draw_heatmap(
        heatmap_of(ROWS, "fast", "slow", "sharpe", title="sweep 1: $SPY"), tmp_path / "h.png"
    )
    with Image.open(tmp_path / "h.png") as image:
        assert image.format == "PNG"
        assert image.width >= 500 and image.height >= 400
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 6  # cells of different colours


def test_an_html_heatmap_is_one_page_holding_the_plot_and_needing_no_network(
    tmp_path: Path,
) -> None:
    draw_heatmap(heatmap_of(ROWS, "fast", "slow", "sharpe", title="sweep 1"), tmp_path / "h.html")
    page = (tmp_path / "h.html").read_text(encoding="utf-8")
    assert "<script" in page and "Bokeh" in page
    assert '"name":"heatmap"' in page.replace(" ", "")
    assert (
        "sharpe, max over the other parameters and the data sets: 18 backtests in 6 cells" in page
    )
    assert not re.search(r"<(script|link)[^>]*\b(src|href)=", page)  # Bokeh's script inlined


def test_a_name_that_is_neither_a_picture_nor_a_page_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="'h.txt' is not a .png, .svg or .pdf file, nor an"):
        draw_heatmap(heatmap_of(ROWS, "fast", "slow", "sharpe"), tmp_path / "h.txt")
    assert not (tmp_path / "h.txt").exists()
