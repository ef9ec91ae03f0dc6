"""A backtest's report as one interactive HTML page, drawn with Bokeh (as backtesting.py does).

Panels, top to bottom, zoomed and panned together: the price as candles with every trade's
entry and exit, the equity with its running peak, the drawdown, and each trade's pnl; then
the statistics. A trade is one row of one data source shared by its markers in every panel,
so hovering names it (with the ids of its two fills) and clicking it picks it out
everywhere. Bokeh's JavaScript is inlined: the page needs no network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Final

import numpy as np

from quantflow_async.analysis._extras import import_extra
from quantflow_async.analysis._files import writing
from quantflow_async.analysis.report import Report, headline
from quantflow_async.analysis.report_price import Candles
from quantflow_async.analysis.round_trips import RoundTrips

_PURPOSE: Final = "an HTML report"
_UP, _DOWN = "#00897b", "#d32f2f"  # a trade that won, or lost
_RISING, _FALLING = "#8fcabd", "#f0a3a1"  # candles, paler than the trades over them
_EQUITY, _PEAK, _DRAWDOWN = "#1f4e79", "#7f7f7f", "#d62728"
_TOOLS: Final = "xpan,xwheel_zoom,box_zoom,tap,reset,save"
_MS: Final = 1000.0  # Bokeh's datetime axis counts milliseconds
_CROWDED: Final = 300  # trades, past which their markers are drawn smaller

_NAME_CELL: Final = "text-align:left;padding:2px 16px 2px 0;font-weight:normal;color:#555"
_VALUE_CELL: Final = "text-align:right;padding:2px 0"

# Fits the price panel's y range to the candles in view after each zoom or pan.
_FIT_PRICE: Final = """
const t = candles.data.x, lo = candles.data.low, hi = candles.data.high;
let min = Infinity, max = -Infinity;
for (let i = 0; i < t.length; i++) {
    if (t[i] < x.start || t[i] > x.end) continue;
    if (lo[i] < min) min = lo[i];
    if (hi[i] > max) max = hi[i];
}
if (min <= max) {
    const pad = (max - min) * 0.05 || max * 0.01;
    y.start = min - pad;
    y.end = max + pad;
}
"""


def write_html_report(report: Report, path: str | Path) -> None:
    """Write `report` as one self-contained HTML page into `path`, whole or not at all."""
    page = html_report(report)
    with writing(Path(path)) as temporary:
        temporary.write_text(page, encoding="utf-8")


def html_report(report: Report) -> str:
    """The page, as text."""
    plotting = import_extra("bokeh.plotting", _PURPOSE)
    models = import_extra("bokeh.models", _PURPOSE)
    layouts = import_extra("bokeh.layouts", _PURPOSE)
    embed = import_extra("bokeh.embed", _PURPOSE)
    resources = import_extra("bokeh.resources", _PURPOSE)

    start, end = report.times[0] * _MS, report.times[-1] * _MS
    if report.price.candles is not None:
        start = min(start, report.price.candles.times[0] * _MS)
        end = max(end, report.price.candles.times[-1] * _MS)
    pad = (end - start) * 0.01 or 86_400_000.0
    shared = models.Range1d(start - pad, end + pad, bounds=(start - pad, end + pad))

    def panel(
        name: str, height: int, label: str, *, money: bool = True, legend: bool = False
    ) -> Any:
        made = plotting.figure(
            name=name, x_axis_type="datetime", x_range=shared, height=height, tools=_TOOLS,
            active_drag="xpan", active_scroll="xwheel_zoom", sizing_mode="stretch_width",
            y_axis_label=label,
        )  # fmt: skip
        if legend:  # above the panel, where it can never hide what the panel draws
            made.add_layout(
                models.Legend(orientation="horizontal", location="top_left",
                              border_line_alpha=0, margin=0, padding=2,
                              label_text_font_size="9pt"),
                "above",
            )  # fmt: skip
        made.yaxis.formatter = models.NumeralTickFormatter(format="0,0.[00]" if money else "0.[0]")
        made.xaxis.visible = False
        made.min_border_left = 80
        return made

    trades = models.ColumnDataSource(_trade_columns(report.trades), name="trades")
    panels = []
    if report.price.candles is not None:
        price = panel("price", 320, "price", legend=True)
        still_open = _trade_columns(report.open_trades)
        panels.append(_price_panel(price, models, report.price.candles, trades, still_open))
    panels.append(_equity_panel(panel("equity", 220, "equity", legend=True), models, report))
    panels.append(_drawdown_panel(panel("drawdown", 120, "drawdown %", money=False), report))
    panels.append(_pnl_panel(panel("pnl", 170, "trade pnl"), models, trades))
    panels[-1].xaxis.visible = True
    grid = layouts.gridplot(
        [[made] for made in panels], merge_tools=True, toolbar_location="right",
        sizing_mode="stretch_width",
    )  # fmt: skip
    page = layouts.column(
        models.Div(text=_header(report), sizing_mode="stretch_width", name="header"),
        grid,
        models.Div(text=_statistics(report), sizing_mode="stretch_width", name="statistics"),
        sizing_mode="stretch_width",
    )
    return str(embed.file_html(page, resources.INLINE, title=headline(report)[0]))


def _trade_columns(trades: RoundTrips) -> dict[str, Any]:
    won = trades.pnl >= 0
    return {
        "number": np.arange(1, len(trades) + 1),
        "side": np.where(trades.size > 0, "long", "short"),
        "units": np.abs(trades.size),
        "entry_time": trades.entry_time * _MS,
        "exit_time": trades.exit_time * _MS,
        "entry_price": trades.entry_price,
        "exit_price": trades.exit_price,
        "pnl": trades.pnl,
        "return_pct": trades.return_pct,
        "entry_fill": trades.entry_fill,
        "exit_fill": trades.exit_fill,
        "entry_marker": np.where(trades.size > 0, "triangle", "inverted_triangle"),
        "color": np.where(won, _UP, _DOWN),
    }


def _trade_hover(models: Any, renderers: list[Any]) -> Any:
    return models.HoverTool(
        renderers=renderers,
        tooltips=[
            ("trade", "#@number: @side @units{0,0.[0000]}"),
            ("entry", "@entry_time{%F %H:%M} at @entry_price{0,0.00[00]} (fill @entry_fill)"),
            ("exit", "@exit_time{%F %H:%M} at @exit_price{0,0.00[00]} (fill @exit_fill)"),
            ("pnl", "@pnl{+0,0.00} (@return_pct{+0.00}%)"),
        ],
        formatters={"@entry_time": "datetime", "@exit_time": "datetime"},
    )


def _price_panel(
    made: Any, models: Any, candles: Candles, trades: Any, open_trades: dict[str, Any]
) -> Any:
    spacing = float(np.median(np.diff(candles.times))) if len(candles) > 1 else 60.0
    rising = candles.close >= candles.open
    crowded = len(trades.data["number"]) > _CROWDED
    source = models.ColumnDataSource(
        {
            "x": (candles.times + spacing / 2) * _MS,
            "open": candles.open,
            "high": candles.high,
            "low": candles.low,
            "close": candles.close,
            "top": np.maximum(candles.open, candles.close),
            "bottom": np.minimum(candles.open, candles.close),
            "color": np.where(rising, _RISING, _FALLING),
        }
    )
    made.segment("x", "high", "x", "low", source=source, color="color")
    made.vbar(
        "x", spacing * _MS * 0.8, "top", "bottom", source=source, fill_color="color",
        line_color="color",
    )  # fmt: skip
    made.segment(
        "entry_time", "entry_price", "exit_time", "exit_price", source=trades, color="color",
        line_width=1.5 if crowded else 2, line_dash="dotted",
    )  # fmt: skip
    exits = made.scatter(
        "exit_time", "exit_price", source=trades, marker="circle", size=6 if crowded else 10,
        fill_color="white", line_color="color", line_width=1.5 if crowded else 2,
        legend_label="exit",
    )  # fmt: skip
    entries = made.scatter(
        "entry_time", "entry_price", source=trades, marker="entry_marker",
        size=6 if crowded else 9,
        fill_color="color", line_color="black", line_width=0.5, legend_label="entry",
    )  # fmt: skip
    still_open = models.ColumnDataSource(open_trades, name="open_trades")
    # A legend entry only for what is there: an empty one would show a label with no marker.
    named = {"legend_label": "still open at the end"} if len(open_trades["number"]) else {}
    left = made.scatter(
        "entry_time", "entry_price", source=still_open, marker="entry_marker", size=10,
        fill_color="#ffd54f", line_color="black", line_width=0.5, **named,
    )  # fmt: skip
    made.add_tools(_trade_hover(models, [entries, exits]))
    made.add_tools(
        models.HoverTool(
            renderers=[left],
            formatters={"@entry_time": "datetime"},
            tooltips=[
                ("open", "@side @units{0,0.[0000]} since @entry_time{%F %H:%M}"),
                ("entry", "at @entry_price{0,0.00[00]} (fill @entry_fill)"),
            ],
        )
    )
    made.y_range = models.Range1d(float(candles.low.min()), float(candles.high.max()))
    made.x_range.js_on_change(
        "end",
        models.CustomJS(args={"candles": source, "x": made.x_range, "y": made.y_range},
                        code=_FIT_PRICE),
    )  # fmt: skip
    return made


def _equity_panel(made: Any, models: Any, report: Report) -> Any:
    peak = np.maximum.accumulate(report.equity)
    source = models.ColumnDataSource(
        {"time": report.times * _MS, "equity": report.equity, "peak": peak}
    )
    made.varea("time", "equity", "peak", source=source, fill_color=_DRAWDOWN, fill_alpha=0.2)
    made.line("time", "peak", source=source, color=_PEAK, line_dash="dashed",
              legend_label="running peak")  # fmt: skip
    curve = made.line("time", "equity", source=source, color=_EQUITY, line_width=1.5,
                      legend_label="equity")  # fmt: skip
    made.add_tools(
        models.HoverTool(
            renderers=[curve],
            mode="vline",
            formatters={"@time": "datetime"},
            tooltips=[("time", "@time{%F %H:%M}"), ("equity", "@equity{0,0.00}")],
        )  # fmt: skip
    )
    return made


def _drawdown_panel(made: Any, report: Report) -> Any:
    made.varea(report.times * _MS, report.drawdown_pct, 0.0, fill_color=_DRAWDOWN,
               fill_alpha=0.35)  # fmt: skip
    made.line(report.times * _MS, report.drawdown_pct, color=_DRAWDOWN, line_width=1)
    return made


def _pnl_panel(made: Any, models: Any, trades: Any) -> Any:
    made.add_layout(models.Span(location=0, dimension="width", line_color="#999999"))
    marks = made.scatter(
        "exit_time", "pnl", source=trades, marker="entry_marker",
        size=6 if len(trades.data["number"]) > _CROWDED else 8, fill_color="color",
        line_color="black", line_width=0.5,
    )  # fmt: skip
    made.add_tools(_trade_hover(models, [marks]))
    return made


def _header(report: Report) -> str:
    heading, details = headline(report)
    price = report.price
    drawn = (
        f"price: {price.candles.described}"
        if price.candles is not None
        else f"price not drawn: {price.reason}; give the bars with --data FILE"
    )
    return (
        f"<h2 style='margin:4px 0'>{html.escape(heading)}</h2>"
        f"<div>{html.escape(details)}</div>"
        f"<div style='color:#555;font-size:90%'>{html.escape(drawn)}; equity: "
        f"{len(report.times):,} points of {html.escape(report.source)}; "
        f"{len(report.trades):,} closed trades</div>"
    )


def _statistics(report: Report) -> str:
    backtest = report.backtest
    config = backtest.config or {}
    rows: list[tuple[str, Any]] = [
        ("strategy", config.get("strategy")),
        ("parameters", config.get("parameters")),
        ("symbol", config.get("symbol")),
        ("data", config.get("data")),
        ("commission", config.get("commission")),
        ("initial capital", float(backtest.initial_capital)),
        ("closed trades", len(report.trades)),
        ("fills", len(report.buys) + len(report.sells)),
    ]
    rows += [(key.replace("_pct", " %").replace("_", " "), value)
             for key, value in (backtest.metrics or {}).items()]  # fmt: skip
    shown = [
        f"<tr><th style='{_NAME_CELL}'>{html.escape(name)}</th>"
        f"<td style='{_VALUE_CELL}'>{html.escape(_shown(value))}</td></tr>"
        for name, value in rows
        if value is not None
    ]
    per_table = -(-len(shown) // 3)
    tables = "".join(
        f"<table style='border-collapse:collapse'>{''.join(shown[i : i + per_table])}</table>"
        for i in range(0, len(shown), per_table)
    )
    return (
        "<h3 style='margin:12px 0 4px'>statistics</h3>"
        f"<div style='display:flex;flex-wrap:wrap;gap:8px 48px;font-size:90%'>{tables}</div>"
    )


def _shown(value: Any) -> str:
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}"
    return json.dumps(value, separators=(", ", ": "), default=str)
