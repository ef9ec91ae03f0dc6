"""backtesting.py's `optimize` of SmaCross over a grid, on each of several bars CSVs, as a
user of it runs a sweep: the process that `sweep_run.py` times against `quantflow sweep`.

    python benchmarks/peer_optimize.py A.csv B.csv ... --fast 3 5 8 13 --slow 21 34 55 89 \
        --cash 100000 --commission 0.0005

Reads each CSV with pandas and runs `Backtest(...).optimize(fast=..., slow=...)` (every
config of the grid, maximizing the return, in backtesting.py's own worker processes), then
prints one JSON line: per file, the best config, its return and its trades.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
from backtesting import Backtest
from peer_arguments import grid_arguments
from peer_sma_cross import SmaCross


def main() -> None:
    args = grid_arguments(__doc__.splitlines()[0])
    best: dict[str, dict[str, object]] = {}
    for data in args.data:
        frame = pd.read_csv(data, index_col=0, parse_dates=True)
        frame.columns = [name.capitalize() for name in frame.columns]  # Open, High, ...
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "trades remain open", pandas deprecations
            backtest = Backtest(
                frame, SmaCross, cash=args.cash, commission=args.commission, exclusive_orders=True
            )
            stats = backtest.optimize(fast=args.fast, slow=args.slow, maximize="Return [%]")
        strategy = stats["_strategy"]
        best[Path(data).stem] = {
            "fast": int(strategy.fast),
            "slow": int(strategy.slow),
            "return_pct": float(stats["Return [%]"]),
            "trades": int(stats["# Trades"]),
        }
    print(json.dumps({"configs": len(args.fast) * len(args.slow), "best": best}))


if __name__ == "__main__":
    main()
