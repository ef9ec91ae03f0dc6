"""A strategy a search's worker processes import by reference, for the tests of workers
killed during a search."""

from __future__ import annotations

import os
import time
from pathlib import Path

from quantflow_async.backtest.strategies import SmaCross


class FirstOneWaits(SmaCross):
    """SmaCross whose first run (the one that finds no `pid_file`) writes its process id
    there and sleeps a minute: a test knows which worker to kill, and when."""

    pid_file: str = ""

    def init(self) -> None:
        if self.pid_file:
            first = Path(self.pid_file)
            partial = Path(f"{self.pid_file}.{os.getpid()}.partial")
            if not first.exists():
                partial.write_text(str(os.getpid()))
                partial.rename(first)  # whole or absent for a reader
                time.sleep(60.0)
        super().init()
