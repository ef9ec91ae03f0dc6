"""backtesting.py's SmaCross over a bars CSV, as a user of it runs one: the process that
`backtest_run.py` times against `quantflow backtest run`.

    python benchmarks/peer_sma_cross.py BARS.csv --cash 10000 --commission 0.002

Reads the CSV with pandas, runs the documented SmaCross(10, 20) example with exclusive orders,
and prints one JSON line: trades and final equity.
"""

from __future__ import annotations

import argparse
import json
import warnings

import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA


class SmaCross(Strategy):
    fast = 10
    slow = 20

    def init(self) -> None:
        self.fast_ma = self.I(SMA, self.data.Close, self.fast)
        self.slow_ma = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_ma, self.slow_ma):
            self.position.close()
            self.buy()
        elif crossover(self.slow_ma, self.fast_ma):
            self.position.close()
            self.sell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--cash", type=float, default=10_000.0)
    parser.add_argument("--commission", type=float, default=0.0)
    args = parser.parse_args()
    frame = pd.read_csv(args.data, index_col=0, parse_dates=True)
    frame.columns = [name.capitalize() for name in frame.columns]  # Open, High, ...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "trades remain open", pandas deprecations
        backtest = Backtest(
            frame, SmaCross, cash=args.cash, commission=args.commission, exclusive_orders=True
        )
        stats = backtest.run()
    print(json.dumps({"trades": int(stats["# Trades"]), "final_equity": stats["Equity Final [$]"]}))


if __name__ == "__main__":
    main()
