"""`quantflow sweep heatmap ID -x fast -y slow --metric sharpe -o heat.png`: one statistic of a
stored sweep over two of its parameters, the others aggregated (max by default), as a picture
or an interactive .html page.

A wrong file name, statistic or aggregation is said before the database is read.
"""

from __future__ import annotations

import argparse

from quantflow_async.cli.output import reading
from quantflow_async.cli.parsing import Parser, add_command, add_output_option
from quantflow_async.config import Settings

AGGREGATIONS = ("max", "mean", "median", "min")
"""analysis/heatmap.py's, repeated so that `--help` imports no numpy (a test checks they agree)."""


async def heatmap(settings: Settings, args: argparse.Namespace) -> None:
    import numpy as np

    from quantflow_async.analysis import check_output
    from quantflow_async.analysis.heatmap import (
        check_heatmap,
        draw_heatmap,
        heatmap_format,
        load_heatmap,
    )
    from quantflow_async.database import Database

    check_heatmap(args.x, args.y, args.metric, args.agg)
    heatmap_format(args.output)
    check_output(args.output)
    async with Database(settings=settings) as db:
        shown = await load_heatmap(db, args.sweep_id, args.x, args.y, args.metric, agg=args.agg)
    draw_heatmap(shown, args.output)
    finite = shown.values[np.isfinite(shown.values)]
    best = f", {args.agg} cell {finite.max():,.4g}" if finite.size else ""
    print(
        f"wrote {args.output}: sweep {args.sweep_id}, {args.metric} over "
        f"{len(shown.xs)} {args.x} x {len(shown.ys)} {args.y}, "
        f"{int(shown.counts.sum()):,} backtests{best}"
    )


def register_verbs(verbs: argparse._SubParsersAction[Parser]) -> None:
    command = add_command(
        verbs,
        "heatmap",
        "draw one statistic of a stored sweep over two of its parameters, the others "
        "aggregated (analysis extra)",
        reading(heatmap),
    )
    command.add_argument("sweep_id", type=int, metavar="SWEEP_ID", help="the sweep")
    command.add_argument("-x", required=True, metavar="PARAM", help="the parameter across")
    command.add_argument("-y", required=True, metavar="PARAM", help="the parameter up")
    command.add_argument(
        "--metric",
        default="sharpe",
        metavar="STAT",
        help="the stored statistic to draw (sharpe); e.g. return_pct, max_drawdown_pct, sqn",
    )
    command.add_argument(
        "--agg",
        choices=AGGREGATIONS,
        default="max",
        help="how the backtests of one cell (the other parameters' values, every data set) "
        "make its value (max)",
    )
    add_output_option(command, "a .png, .svg or .pdf picture, or an .html page to hover")
