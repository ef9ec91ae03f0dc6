"""A backtest's picture: the price with its buys and sells, the equity curve with the
drawdowns shaded, and the drawdown.

The curve is the one the runner stored in `backtests.results["equity_curve"]`; a backtest
without one (stored by other code, or failed) gets a curve rebuilt from its trades: the
initial capital plus realized pnl less fees, step by step. The price is the backtest's bars
file read again (see `report_price`). Drawn with matplotlib's Agg renderer (no display
needed), which comes with the `analysis` extra; `.html` gives the interactive page of
`report_html` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from quantflow_async.analysis._extras import import_extra
from quantflow_async.analysis._files import PICTURE_FORMATS, output_format, writing
from quantflow_async.analysis.report_price import Candles, PriceLookup, find_price
from quantflow_async.analysis.round_trips import RoundTripBuilder, RoundTrips, StoredFill
from quantflow_async.database import Database
from quantflow_async.errors import InvalidValue
from quantflow_async.records import Backtest

FloatArray = npt.NDArray[np.float64]

IMAGE_FORMATS: Final = PICTURE_FORMATS
FROM_RESULTS: Final = "the stored equity curve"
FROM_TRADES: Final = "the trades' realized pnl less fees (no equity curve stored)"

_EQUITY, _PEAK, _DRAWDOWN = "#1f4e79", "#7f7f7f", "#d62728"
_BUY, _SELL = "#2ca02c", "#ff7f0e"
_PRICE, _RANGE = "#3a3a3a", "#d0d4da"


@dataclass(frozen=True, slots=True)
class Report:
    """What a report shows: the curve (epoch seconds, equity), where it came from, the times
    and prices of the buys and sells it marks, the trades they closed and those left open,
    and the price."""

    backtest: Backtest
    times: FloatArray
    equity: FloatArray
    source: str
    buys: FloatArray
    sells: FloatArray
    buy_prices: FloatArray
    sell_prices: FloatArray
    trades: RoundTrips
    open_trades: RoundTrips
    price: PriceLookup

    @property
    def drawdown_pct(self) -> FloatArray:
        """How far below its running peak the curve is, in percent (0 or negative)."""
        peak = np.maximum.accumulate(self.equity)
        return np.where(peak > 0, (self.equity / peak - 1) * 100, 0.0)

    @property
    def max_drawdown_pct(self) -> float:
        """The deepest drawdown, in percent: 0 or negative, as the backtest metrics give it."""
        return float(self.drawdown_pct.min())


async def load_report(db: Database, backtest_id: int, *, data: str | Path | None = None) -> Report:
    """The backtest's curve and trades, read from the store (trades streamed), and its price
    from `data` or the bars file it names (see `report_price.find_price`)."""
    backtest = await db.backtests.get(backtest_id)
    marks: dict[str, tuple[list[float], list[float]]] = {"buy": ([], []), "sell": ([], [])}
    steps: list[tuple[float, float]] = []  # (time, realized pnl less fee) of each trade
    trades = RoundTripBuilder()
    async for trade in db.trades.stream(backtest_id=backtest.id):
        moment, paid = trade.executed_at.timestamp(), float(trade.price)
        moments, prices = marks[trade.side]
        moments.append(moment)
        prices.append(paid)
        steps.append((moment, float((trade.pnl or 0) - (trade.fee or 0))))
        quantity = float(trade.quantity) * (1 if trade.side == "buy" else -1)
        fee = float(trade.fee or 0)
        trades.add(StoredFill(trade.id, trade.symbol, quantity, paid, fee, moment))
    curve = _stored_curve(backtest.results)
    if curve is not None:
        times, equity, source = *curve, FROM_RESULTS
    elif steps:
        times, equity, source = *_curve_of_trades(backtest, steps), FROM_TRADES
    else:
        raise InvalidValue(
            "backtest_id",
            f"backtest {backtest.id} has no equity curve stored and no trades to draw one "
            f"from (status {backtest.status})",
        )
    price = await anyio.to_thread.run_sync(find_price, backtest, data)
    (buys, buy_prices), (sells, sell_prices) = (
        (np.array(moments), np.array(prices)) for moments, prices in marks.values()
    )
    return Report(
        backtest, times, equity, source, buys, sells, buy_prices, sell_prices, trades.build(),
        trades.still_open(), price,
    )  # fmt: skip


def _stored_curve(results: Mapping[str, Any] | None) -> tuple[FloatArray, FloatArray] | None:
    curve = (results or {}).get("equity_curve")
    if not isinstance(curve, Mapping):
        return None
    times, equity = curve.get("time"), curve.get("equity")
    if not isinstance(times, list) or not isinstance(equity, list) or not times:
        return None
    if len(times) != len(equity):
        return None
    return np.array(times, dtype=np.float64), np.array(equity, dtype=np.float64)


def _curve_of_trades(
    backtest: Backtest, steps: list[tuple[float, float]]
) -> tuple[FloatArray, FloatArray]:
    start = min(backtest.start_date.timestamp(), steps[0][0])
    times = np.array([start, *(moment for moment, _ in steps)])
    changes = np.array([0.0, *(change for _, change in steps)])
    return times, float(backtest.initial_capital) + np.cumsum(changes)


def image_format(path: Path) -> str:
    """The picture format a file name asks for, or InvalidValue."""
    return output_format(path, page=False)


def report_format(path: Path) -> str:
    """The format of report a file name asks for: a picture's, or "html" for the page."""
    return output_format(path, page=True)


def draw_report(report: Report, path: str | Path, *, format: str | None = None) -> None:
    """Draw `report` into `path` (PNG, SVG or PDF, from `format` or the file's suffix); the
    file is written whole or not at all."""
    target = Path(path)
    chosen = format or image_format(target)
    figure = report_figure(report)
    with writing(target) as temporary:
        figure.savefig(temporary, format=chosen)


def report_figure(report: Report) -> Any:
    """The matplotlib Figure of `report`, 1200 x 700 pixels: price (when its bars were found),
    equity and drawdown panels."""
    figure_module = import_extra("matplotlib.figure", "drawing a report")
    agg = import_extra("matplotlib.backends.backend_agg", "drawing a report")
    ticker = import_extra("matplotlib.ticker", "drawing a report")
    figure = figure_module.Figure(figsize=(12, 7), dpi=100, layout="constrained")
    agg.FigureCanvasAgg(figure)
    candles = report.price.candles
    ratios = [3, 1] if candles is None else [2.2, 2.2, 1]
    panels = figure.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    *price_axes, curve_axes, drawdown_axes = panels
    if candles is not None:
        _draw_price(price_axes[0], report, candles)
    _draw_curve(curve_axes, report, marked=candles is None)
    _draw_drawdown(drawdown_axes, report)
    for axes in panels:
        axes.yaxis.set_major_formatter(_thousands(ticker))
    # parse_math=False: a name is words, and a `$` in it is a dollar sign, not a formula.
    figure.suptitle(_title(report), x=0.01, ha="left", fontsize=12, parse_math=False)
    return figure


def _dates(seconds: FloatArray) -> Any:
    return (seconds * 1e6).astype("datetime64[us]")


def _thousands(ticker: Any) -> Any:
    """Tick labels with thousands separators, and as many decimals as the ticks need."""
    formatter: Any = ticker.FuncFormatter(lambda value, _: _grouped(value, formatter.axis))
    return formatter


def _grouped(value: float, axis: Any) -> str:
    """`value` with thousands separators and the fewest decimals that tell the ticks apart."""
    ticks = np.asarray(axis.get_majorticklocs(), dtype=np.float64)
    tolerance = 1e-9 * max(1.0, float(np.abs(ticks).max(initial=0.0)))
    decimals = next(
        (d for d in range(7) if np.allclose(np.round(ticks, d), ticks, rtol=0, atol=tolerance)), 6
    )
    return f"{value:,.{decimals}f}"


def _outside_legend(axes: Any) -> None:
    """The legend in a row above the panel, where it can never hide what the panel draws."""
    axes.legend(
        loc="lower left", bbox_to_anchor=(0, 1.0), ncols=5, fontsize=8, frameon=False,
        borderaxespad=0.1, handlelength=1.6, columnspacing=1.2,
    )  # fmt: skip


def _draw_price(axes: Any, report: Report, candles: Candles) -> None:
    when = _dates(candles.times)
    merged = f" ({candles.per_candle} bars)" if candles.per_candle > 1 else ""
    axes.fill_between(
        when, candles.low, candles.high, color=_RANGE, linewidth=0, step="post",
        label=f"high to low{merged}",
    )  # fmt: skip
    axes.plot(when, candles.close, color=_PRICE, linewidth=0.7, label="close")
    _draw_marks(axes, report, report.buy_prices, report.sell_prices)
    axes.set_ylabel("price", fontsize=9)
    axes.grid(alpha=0.3)
    _outside_legend(axes)


def _draw_marks(axes: Any, report: Report, buy_levels: FloatArray, sell_levels: FloatArray) -> None:
    size = 36 if len(report.buys) + len(report.sells) <= 300 else 10
    for moments, levels, marker, color, name in (
        (report.buys, buy_levels, "^", _BUY, "buys"),
        (report.sells, sell_levels, "v", _SELL, "sells"),
    ):
        if len(moments):
            axes.scatter(
                _dates(moments), levels, marker=marker, color=color, s=size, zorder=3,
                linewidths=0, rasterized=True, label=f"{name} ({len(moments):,})",
            )  # fmt: skip


def _draw_curve(axes: Any, report: Report, *, marked: bool) -> None:
    when = _dates(report.times)
    peak = np.maximum.accumulate(report.equity)
    axes.plot(when, report.equity, color=_EQUITY, linewidth=1.3, label="equity")
    axes.plot(when, peak, color=_PEAK, linewidth=0.8, linestyle="--", label="running peak")
    if report.max_drawdown_pct < 0:
        axes.fill_between(
            when, report.equity, peak, where=report.equity < peak, color=_DRAWDOWN, alpha=0.25,
            linewidth=0, label=f"drawdown (max {report.max_drawdown_pct:.1f}%)",
        )  # fmt: skip
    if marked:
        levels = (np.interp(moments, report.times, report.equity) for moments in
                  (report.buys, report.sells))  # fmt: skip
        _draw_marks(axes, report, *levels)
    axes.set_ylabel(f"equity ({report.source})", fontsize=9)
    axes.grid(alpha=0.3)
    _outside_legend(axes)


def _draw_drawdown(axes: Any, report: Report) -> None:
    when = _dates(report.times)
    axes.fill_between(when, report.drawdown_pct, 0, color=_DRAWDOWN, alpha=0.35, linewidth=0)
    axes.plot(when, report.drawdown_pct, color=_DRAWDOWN, linewidth=0.6)
    axes.set_ylabel("drawdown %", fontsize=9)
    axes.grid(alpha=0.3)


def headline(report: Report) -> tuple[str, str]:
    """The report's title and the line under it: the period and the main metrics."""
    backtest = report.backtest
    metrics = backtest.metrics or {}
    shown = [
        f"{label} {metrics[key]:,.2f}{unit}"
        for key, label, unit in (
            ("return_pct", "return", "%"),
            ("max_drawdown_pct", "max drawdown", "%"),
            ("sharpe", "Sharpe", ""),
        )
        if isinstance(metrics.get(key), int | float)
    ]
    period = f"{backtest.start_date:%Y-%m-%d} to {backtest.end_date:%Y-%m-%d}"
    heading = f"backtest {backtest.id}: {backtest.name} ({backtest.status})"
    return heading, "   ".join([period, *shown])


def _title(report: Report) -> str:
    return "\n".join(headline(report))


async def write_report(
    db: Database, backtest_id: int, path: str | Path, *, data: str | Path | None = None
) -> Report:
    """Load a backtest's report from the store and draw it into `path`: a picture, or the
    interactive page for an `.html` name; return what it shows.

    The drawing (about a second) runs in a worker thread, so the event loop goes on meanwhile.
    """
    chosen = report_format(Path(path))
    report = await load_report(db, backtest_id, data=data)
    if chosen == "html":
        from quantflow_async.analysis.report_html import write_html_report

        await anyio.to_thread.run_sync(write_html_report, report, path)
    else:
        await anyio.to_thread.run_sync(draw_report, report, path)
    return report
