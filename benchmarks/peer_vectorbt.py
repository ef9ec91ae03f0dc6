"""vectorbt's run of the same SmaCross grid on each of several bars CSVs, as its users write a
parameter sweep: the process `sweep_run.py --vectorbt PYTHON` times beside `quantflow sweep`.

    PYTHON benchmarks/peer_vectorbt.py A.csv B.csv ... --fast 3 5 8 13 --slow 21 34 55 89 \
        --cash 100000 --commission 0.0005

vectorbt is no dependency of this project (it brings numba and its own pins): give it an
interpreter of its own,

    python -m venv .venv-vectorbt && .venv-vectorbt/bin/pip install vectorbt

and pass `.venv-vectorbt/bin/python` as `sweep_run.py --vectorbt`. For each file: pandas'
read_csv, `vbt.MA.run` over the grid's fast and slow windows (every pair, one column each),
the crossovers as long and short entries and exits, and `Portfolio.from_signals` over all the
pairs at once; then one JSON line: per file, the best config by total return and its trades.
It keeps nothing. vectorbt's rules are not backtesting.py's (it fills at the signal bar's
close, backtesting.py at the next bar's open), so its configs and returns are not compared
with ours: its time is what is measured.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import vectorbt as vbt
from peer_arguments import grid_arguments


def main() -> None:
    args = grid_arguments(__doc__.splitlines()[0])
    pairs = [(fast, slow) for fast in args.fast for slow in args.slow]
    best: dict[str, dict[str, object]] = {}
    for data in args.data:
        close = pd.read_csv(data, index_col=0, parse_dates=True)["close"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas deprecations inside vectorbt
            fast = vbt.MA.run(close, [f for f, _ in pairs], short_name="fast")
            slow = vbt.MA.run(close, [s for _, s in pairs], short_name="slow")
            up, down = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
            portfolio = vbt.Portfolio.from_signals(
                close, entries=up, exits=down, short_entries=down, short_exits=up,
                init_cash=args.cash, fees=args.commission, freq="1h",
            )  # fmt: skip
            returns = portfolio.total_return()
            trades = portfolio.trades.count()
        column = returns.idxmax()
        position = list(returns.index).index(column)
        best[Path(data).stem] = {
            "fast": pairs[position][0],
            "slow": pairs[position][1],
            "return_pct": float(returns.iloc[position]) * 100,
            "trades": int(trades.iloc[position]),
        }
    print(json.dumps({"configs": len(pairs), "best": best}))


if __name__ == "__main__":
    main()
