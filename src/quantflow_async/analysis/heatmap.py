"""A sweep's heatmap: one statistic over two parameters, the others aggregated away (by max, or
by mean, median or min), as a picture (matplotlib) or an interactive HTML page (Bokeh).

    heatmap = heatmap_of(rows, "fast", "slow", "sharpe", agg="mean")
    draw_heatmap(heatmap, "heat.png")

`rows` are each backtest's (parameters, metrics), plain mappings; `load_heatmap` reads a
stored sweep's instead. A parameter with more than `MAX_LEVELS` numeric values (a search's floats)
is cut into `BINS` ranges of equal width, so the map stays readable.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quantflow_async.analysis._extras import import_extra
from quantflow_async.analysis._files import output_format, writing
from quantflow_async.backtest.objective import check_statistic, statistic
from quantflow_async.database import Database
from quantflow_async.errors import InvalidValue
from quantflow_async.store.repositories.sweep_values import parameter_names, sweep_values

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

AGGREGATIONS: Final[dict[str, Callable[[FloatArray], Any]]] = {
    "max": np.max, "mean": np.mean, "median": np.median, "min": np.min,
}  # fmt: skip
"""How the backtests of one cell (the other parameters' values, every data set) make its one
value."""
MAX_LEVELS: Final = 30
BINS: Final = 20
_ANNOTATED_CELLS: Final = 400  # past this many cells, values are in the colour (and hover) only
_PURPOSE: Final = "a heatmap"


@dataclass(frozen=True, slots=True)
class Heatmap:
    """`values[j, i]` is the aggregated statistic of the backtests at `xs[i]`, `ys[j]` (NaN
    where none has a value); `counts[j, i]` how many backtests went into it."""

    x: str
    y: str
    metric: str
    agg: str
    xs: tuple[str, ...]
    ys: tuple[str, ...]
    values: FloatArray
    counts: IntArray
    title: str = ""

    @property
    def subtitle(self) -> str:
        cells = int(np.count_nonzero(self.counts))
        backtests = int(self.counts.sum())
        return (
            f"{self.metric}, {self.agg} over the other parameters and the data sets: "
            f"{backtests:,} backtests in {cells:,} cells"
        )


def heatmap_of(
    rows: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]],
    x: str,
    y: str,
    metric: str,
    *,
    agg: str = "max",
    title: str = "",
) -> Heatmap:
    """The heatmap of `metric` over parameters `x` and `y` of `rows` (each a backtest's
    parameters and metrics); InvalidValue for an unknown parameter, statistic or aggregation,
    no rows, or a statistic that none of them has."""
    check_heatmap(x, y, metric, agg)
    table = [(dict(parameters), metrics) for parameters, metrics in rows]
    if not table:
        raise InvalidValue("sweep", "has no completed backtest to draw")
    check_parameters(x, y, set().union(*(parameters.keys() for parameters, _ in table)))
    points = [(p.get(x), p.get(y), statistic(metrics, metric)) for p, metrics in table]
    return _aggregated(points, x, y, metric, agg, title)


async def load_heatmap(
    db: Database, sweep_id: int, x: str, y: str, metric: str, *, agg: str = "max"
) -> Heatmap:
    """The heatmap of stored sweep `sweep_id`'s completed backtests (NotFound for a sweep
    that is not stored, InvalidValue as `heatmap_of` gives, or for a sweep with no completed
    backtest). Only the two parameters and the statistic are read, picked out in SQL."""
    check_heatmap(x, y, metric, agg)
    sweep = await db.sweeps.get(sweep_id)
    names = await parameter_names(db.engine, sweep.id)
    if names:
        check_parameters(x, y, set(names))
    rows = await sweep_values(db.engine, sweep.id, metric, parameters=[x, y], status="completed")
    if not rows:
        raise InvalidValue(
            "sweep", f"sweep {sweep.id} has no completed backtest to draw (it is {sweep.status})"
        )
    points = [(row.parameters[x], row.parameters[y], row.value) for row in rows]
    title = f"sweep {sweep.id}: {sweep.strategy}" + (f" ({sweep.name})" if sweep.name else "")
    return _aggregated(points, x, y, metric, agg, title)


def check_heatmap(x: str, y: str, metric: str, agg: str) -> None:
    """InvalidValue (StrategyConfigError for the statistic) unless the choices can make a
    heatmap: a stored statistic, a known aggregation, two parameters."""
    check_statistic(metric)
    if agg not in AGGREGATIONS:
        raise InvalidValue("agg", f"must be one of {', '.join(AGGREGATIONS)}, got {agg!r}")
    if x == y:
        raise InvalidValue("y", f"is the same parameter as x ({x!r}): choose two")


def check_parameters(x: str, y: str, names: set[str]) -> None:
    for axis, name in (("x", x), ("y", y)):
        if name not in names:
            known = ", ".join(sorted(names))
            raise InvalidValue(axis, f"no parameter named {name!r} (parameters: {known})")


def _aggregated(
    points: list[tuple[Any, Any, float | None]], x: str, y: str, metric: str, agg: str, title: str
) -> Heatmap:
    xs, x_at = _axis([point[0] for point in points])
    ys, y_at = _axis([point[1] for point in points])
    cells: dict[tuple[int, int], list[float]] = {}
    counts = np.zeros((len(ys), len(xs)), dtype=np.int64)
    for row, (_, _, value) in enumerate(points):
        counts[y_at[row], x_at[row]] += 1
        if value is not None:
            cells.setdefault((y_at[row], x_at[row]), []).append(value)
    if not cells:
        raise InvalidValue(
            "metric",
            f"{metric} has no value in any of the {len(points)} backtests (a statistic left "
            "empty where it cannot be computed): nothing to draw; choose another",
        )
    values = np.full((len(ys), len(xs)), np.nan)
    for (j, i), found in cells.items():
        values[j, i] = float(AGGREGATIONS[agg](np.array(found)))
    return Heatmap(x, y, metric, agg, xs, ys, values, counts, title)


def _axis(values: list[Any]) -> tuple[tuple[str, ...], list[int]]:
    """An axis's labels in order, and the position of each value on it: one level per value,
    or BINS ranges for more than MAX_LEVELS numbers."""
    levels = sorted(set(map(_level, values)))
    numeric = all(kind == 0 for kind, _ in levels)
    if numeric and len(levels) > MAX_LEVELS:
        if all(isinstance(value, int) for value in values):
            return _binned_whole(values)
        return _binned([float(v) for v in values])
    at = {level: position for position, level in enumerate(levels)}
    return tuple(_label(value) for _, value in levels), [at[_level(v)] for v in values]


def _level(value: Any) -> tuple[int, Any]:
    """A key that orders numbers by size and puts the rest (text, null) after them by text."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return 0, value
    if value is None or isinstance(value, bool):
        return 1, "null" if value is None else str(value).lower()
    return 1, str(value)


def _binned(values: list[float]) -> tuple[tuple[str, ...], list[int]]:
    low, high = min(values), max(values)
    edges = np.linspace(low, high, BINS + 1)
    at = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, BINS - 1)
    labels = tuple(f"{_number(edges[i])}..{_number(edges[i + 1])}" for i in range(BINS))
    return labels, [int(i) for i in at]


def _binned_whole(values: list[int]) -> tuple[tuple[str, ...], list[int]]:
    """Whole numbers in ranges of whole numbers, as few as make at most BINS of them."""
    low, high = min(values), max(values)
    width = -(-(high - low + 1) // BINS)
    count = -(-(high - low + 1) // width)
    ends = [(low + i * width, min(high, low + (i + 1) * width - 1)) for i in range(count)]
    labels = tuple(str(first) if first == last else f"{first}..{last}" for first, last in ends)
    return labels, [(value - low) // width for value in values]


def _label(value: Any) -> str:
    return _number(value) if isinstance(value, float) else str(value)


def _number(value: float) -> str:
    return f"{value:.4g}"


def heatmap_format(path: Path) -> str:
    """The format a heatmap's file name asks for, or InvalidValue."""
    return output_format(path, page=True)


def draw_heatmap(heatmap: Heatmap, path: str | Path) -> None:
    """Draw `heatmap` into `path`: a picture (.png, .svg, .pdf) or an interactive .html page,
    written whole or not at all."""
    target = Path(path)
    chosen = heatmap_format(target)
    if chosen == "html":
        page = heatmap_page(heatmap)
        with writing(target) as temporary:
            temporary.write_text(page, encoding="utf-8")
        return
    figure = heatmap_figure(heatmap)
    with writing(target) as temporary:
        figure.savefig(temporary, format=chosen)


def heatmap_figure(heatmap: Heatmap) -> Any:
    """The matplotlib Figure of `heatmap`: cells coloured by value, each annotated while they
    are few, cells without a value left grey, a colour bar."""
    figure_module = import_extra("matplotlib.figure", _PURPOSE)
    agg = import_extra("matplotlib.backends.backend_agg", _PURPOSE)
    colormaps = import_extra("matplotlib", _PURPOSE).colormaps
    width = min(16.0, max(6.0, 0.5 * len(heatmap.xs) + 3))
    height = min(12.0, max(4.5, 0.35 * len(heatmap.ys) + 2.5))
    figure = figure_module.Figure(figsize=(width, height), dpi=100, layout="constrained")
    agg.FigureCanvasAgg(figure)
    axes = figure.subplots()
    cmap = colormaps["viridis"].with_extremes(bad="#e0e0e0")
    shown = np.ma.masked_invalid(heatmap.values)
    image = axes.imshow(shown, cmap=cmap, aspect="auto", origin="lower", interpolation="nearest")
    axes.set_xticks(range(len(heatmap.xs)), heatmap.xs, rotation=45 if len(heatmap.xs) > 8 else 0,
                    ha="right" if len(heatmap.xs) > 8 else "center", fontsize=8)  # fmt: skip
    axes.set_yticks(range(len(heatmap.ys)), heatmap.ys, fontsize=8)
    axes.set_xlabel(heatmap.x, parse_math=False)
    axes.set_ylabel(heatmap.y, parse_math=False)
    colorbar = figure.colorbar(image, ax=axes)
    colorbar.set_label(f"{heatmap.metric} ({heatmap.agg})", parse_math=False)
    if heatmap.values.size <= _ANNOTATED_CELLS:
        _annotate(axes, heatmap)
    title = "\n".join(line for line in (heatmap.title, heatmap.subtitle) if line)
    # parse_math=False: a `$` in a name is a dollar sign, not a formula.
    figure.suptitle(title, x=0.01, ha="left", fontsize=11, parse_math=False)
    return figure


def _annotate(axes: Any, heatmap: Heatmap) -> None:
    finite = heatmap.values[np.isfinite(heatmap.values)]
    middle = float((finite.min() + finite.max()) / 2) if finite.size else 0.0
    for (j, i), value in np.ndenumerate(heatmap.values):
        if math.isfinite(value):
            color = "black" if value > middle else "white"
            axes.text(i, j, f"{value:.3g}", ha="center", va="center", fontsize=7, color=color,
                      parse_math=False)  # fmt: skip


def heatmap_page(heatmap: Heatmap) -> str:
    """The heatmap as one self-contained HTML page (Bokeh's JavaScript inlined): hovering a
    cell gives its two values, the statistic and how many backtests it holds."""
    plotting = import_extra("bokeh.plotting", _PURPOSE)
    models = import_extra("bokeh.models", _PURPOSE)
    palettes = import_extra("bokeh.palettes", _PURPOSE)
    embed = import_extra("bokeh.embed", _PURPOSE)
    resources = import_extra("bokeh.resources", _PURPOSE)
    layouts = import_extra("bokeh.layouts", _PURPOSE)
    rows, columns = np.indices(heatmap.values.shape)
    flat = heatmap.values.ravel()
    source = models.ColumnDataSource(
        {
            "x": [heatmap.xs[i] for i in columns.ravel()],
            "y": [heatmap.ys[j] for j in rows.ravel()],
            "value": flat,
            "shown": ["no value" if math.isnan(v) else f"{v:,.4g}" for v in flat],
            "count": heatmap.counts.ravel(),
        }
    )
    finite = flat[np.isfinite(flat)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    mapper = models.LinearColorMapper(
        palette=palettes.Viridis256,
        low=low,
        high=high if high > low else low + 1,
        nan_color="#e0e0e0",
    )
    figure = plotting.figure(
        name="heatmap", x_range=list(heatmap.xs), y_range=list(heatmap.ys),
        x_axis_label=heatmap.x, y_axis_label=heatmap.y, tools="hover,box_zoom,reset,save",
        toolbar_location="above", width=min(1400, max(760, 50 * len(heatmap.xs) + 260)),
        height=min(1000, max(540, 34 * len(heatmap.ys) + 200)),
        tooltips=[(heatmap.x, "@x"), (heatmap.y, "@y"), (heatmap.metric, "@shown"),
                  ("backtests", "@count")],
    )  # fmt: skip
    figure.rect("x", "y", width=1, height=1, source=source, line_color=None,
                fill_color={"field": "value", "transform": mapper})  # fmt: skip
    figure.add_layout(
        models.ColorBar(color_mapper=mapper, title=f"{heatmap.metric} ({heatmap.agg})"), "right"
    )
    figure.grid.visible = False
    figure.xaxis.major_label_orientation = 0.8 if len(heatmap.xs) > 8 else 0
    header = models.Div(
        text=f"<h3 style='margin:4px 0'>{html.escape(heatmap.title or 'heatmap')}</h3>"
        f"<div style='color:#555'>{html.escape(heatmap.subtitle)}</div>"
    )
    page = layouts.column(header, figure)
    return str(embed.file_html(page, resources.INLINE, title=heatmap.title or "heatmap"))
