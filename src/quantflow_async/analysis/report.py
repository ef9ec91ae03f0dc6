"""A backtest's picture: its equity curve with the drawdowns shaded and its trades marked.

The curve is the one the runner stored in `backtests.results["equity_curve"]`; a backtest
without one (stored by other code, or failed) gets a curve rebuilt from its trades: the
initial capital plus realized pnl less fees, step by step. Drawn with matplotlib's Agg
renderer (no display needed), which comes with the `analysis` extra.
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
from quantflow_async.analysis._files import writing
from quantflow_async.database import Database
from quantflow_async.errors import InvalidValue
from quantflow_async.records import Backtest

FloatArray = npt.NDArray[np.float64]

IMAGE_FORMATS: Final = ("png", "svg", "pdf")
FROM_RESULTS: Final = "the stored equity curve"
FROM_TRADES: Final = "the trades' realized pnl less fees (no equity curve stored)"

_EQUITY, _PEAK, _DRAWDOWN = "#1f4e79", "#7f7f7f", "#d62728"
_BUY, _SELL = "#2ca02c", "#ff7f0e"


@dataclass(frozen=True, slots=True)
class Report:
    """What a report shows: the curve (epoch seconds, equity), where it came from, and the
    times of the buys and sells it marks."""

    backtest: Backtest
    times: FloatArray
    equity: FloatArray
    source: str
    buys: FloatArray
    sells: FloatArray

    @property
    def drawdown_pct(self) -> FloatArray:
        """How far below its running peak the curve is, in percent (0 or negative)."""
        peak = np.maximum.accumulate(self.equity)
        return np.where(peak > 0, (self.equity / peak - 1) * 100, 0.0)

    @property
    def max_drawdown_pct(self) -> float:
        """The deepest drawdown, in percent: 0 or negative, as the backtest metrics give it."""
        return float(self.drawdown_pct.min())


async def load_report(db: Database, backtest_id: int) -> Report:
    """The backtest's curve and trades, read from the store (trades streamed)."""
    backtest = await db.backtests.get(backtest_id)
    buys: list[float] = []
    sells: list[float] = []
    steps: list[tuple[float, float]] = []  # (time, realized pnl less fee) of each trade
    async for trade in db.trades.stream(backtest_id=backtest.id):
        moment = trade.executed_at.timestamp()
        (buys if trade.side == "buy" else sells).append(moment)
        steps.append((moment, float((trade.pnl or 0) - (trade.fee or 0))))
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
    return Report(backtest, times, equity, source, np.array(buys), np.array(sells))


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
    chosen = path.suffix.lower().lstrip(".")
    if chosen not in IMAGE_FORMATS:
        raise InvalidValue(
            "output", f"{path.name!r} is not a .png, .svg or .pdf file; name one that is"
        )
    return chosen


def draw_report(report: Report, path: str | Path, *, format: str | None = None) -> None:
    """Draw `report` into `path` (PNG, SVG or PDF, from `format` or the file's suffix); the
    file is written whole or not at all."""
    target = Path(path)
    chosen = format or image_format(target)
    figure_module = import_extra("matplotlib.figure", "drawing a report")
    agg = import_extra("matplotlib.backends.backend_agg", "drawing a report")
    figure = figure_module.Figure(figsize=(12, 7), dpi=100, layout="constrained")
    agg.FigureCanvasAgg(figure)
    curve_axes, drawdown_axes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    _draw_curve(curve_axes, report)
    _draw_drawdown(drawdown_axes, report)
    # parse_math=False: a name is words, and a `$` in it is a dollar sign, not a formula.
    figure.suptitle(_title(report.backtest), x=0.01, ha="left", fontsize=13, parse_math=False)
    with writing(target) as temporary:
        figure.savefig(temporary, format=chosen)


def _dates(seconds: FloatArray) -> Any:
    return (seconds * 1e6).astype("datetime64[us]")


def _draw_curve(axes: Any, report: Report) -> None:
    when = _dates(report.times)
    peak = np.maximum.accumulate(report.equity)
    axes.plot(when, report.equity, color=_EQUITY, linewidth=1.3, label="equity")
    axes.plot(when, peak, color=_PEAK, linewidth=0.8, linestyle="--", label="running peak")
    if report.max_drawdown_pct < 0:
        axes.fill_between(
            when, report.equity, peak, where=report.equity < peak, color=_DRAWDOWN, alpha=0.25,
            linewidth=0, label=f"drawdown (max {report.max_drawdown_pct:.1f}%)",
        )  # fmt: skip
    size = 36 if len(report.buys) + len(report.sells) <= 300 else 10
    for moments, marker, color, name in (
        (report.buys, "^", _BUY, "buys"),
        (report.sells, "v", _SELL, "sells"),
    ):
        if len(moments):
            level = np.interp(moments, report.times, report.equity)
            axes.scatter(
                _dates(moments), level, marker=marker, color=color, s=size, zorder=3,
                linewidths=0, rasterized=True, label=f"{name} ({len(moments):,})",
            )  # fmt: skip
    axes.set_ylabel(f"equity ({report.source})", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=9)


def _draw_drawdown(axes: Any, report: Report) -> None:
    when = _dates(report.times)
    axes.fill_between(when, report.drawdown_pct, 0, color=_DRAWDOWN, alpha=0.35, linewidth=0)
    axes.plot(when, report.drawdown_pct, color=_DRAWDOWN, linewidth=0.6)
    axes.set_ylabel("drawdown %")
    axes.grid(alpha=0.3)


def _title(backtest: Backtest) -> str:
    metrics = backtest.metrics or {}
    shown = [
        f"{label} {metrics[key]:.2f}{unit}"
        for key, label, unit in (
            ("return_pct", "return", "%"),
            ("max_drawdown_pct", "max drawdown", "%"),
            ("sharpe", "Sharpe", ""),
        )
        if isinstance(metrics.get(key), int | float)
    ]
    period = f"{backtest.start_date:%Y-%m-%d} to {backtest.end_date:%Y-%m-%d}"
    heading = f"backtest {backtest.id}: {backtest.name} ({backtest.status})"
    return f"{heading}\n{'   '.join([period, *shown])}"


async def write_report(db: Database, backtest_id: int, path: str | Path) -> Report:
    """Load a backtest's report from the store and draw it into `path`; return what it shows.

    The drawing (about a second) runs in a worker thread, so the event loop goes on meanwhile.
    """
    report = await load_report(db, backtest_id)
    await anyio.to_thread.run_sync(draw_report, report, path)
    return report
