"""`--by METRIC`: the stored statistic a sweep's backtests are ranked by, checked as the command
line is read, so a typo never costs a sweep. Light to import: every command's `--help` loads it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Final

METRIC_ALIASES: Final = {"return": "return_pct"}
"""Names `--by` takes beside the stored statistics: `return`, its first value, for return_pct."""
SHOWN: Final = ("return_pct", "sharpe", "max_drawdown_pct", "win_rate_pct", "trades")
"""The statistics a ranking of sweep backtests shows, after the one it ranks by."""


def shown_metrics(metric: str, usual: Sequence[str] = SHOWN) -> tuple[str, ...]:
    """The columns of a ranking by `metric`, in `sweep run`, `sweeps show` and a search alike:
    `metric` first, then the rest of `usual`."""
    return tuple(dict.fromkeys((metric, *usual)))


def ranking_metric(text: str) -> str:
    """An argparse type: the stored statistic `--by` ranks by, the names `--maximize` takes
    (`return` is short for return_pct); a usage mistake naming `text` and every statistic."""
    from quantflow_async.backtest.objective import check_statistic
    from quantflow_async.errors import StrategyConfigError

    try:
        return check_statistic(METRIC_ALIASES.get(text, text))
    except StrategyConfigError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from exc
