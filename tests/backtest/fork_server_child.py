"""A program the fork server's tests run: it warms the fork server as `quantflow sweep` does,
forks two processes from it and prints, as one JSON line, what each started with.

    python tests/backtest/fork_server_child.py [--numpy-random | --from-a-thread]

With --numpy-random the server also loads numpy.random (as numpy 1.x does on import), and
each process draws from numpy's global generator before and after the sweep worker's reseed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from quantflow_async.backtest import fork_server
from quantflow_async.backtest.worker import reseed_inherited_numpy

SAFE_PATH_VARIABLES = ("PYTHONSAFEPATH", "QUANTFLOW_FORK_SERVER_SAFE_PATH")


def started_with(connection: Connection) -> None:
    import numpy as np

    state: dict[str, Any] = {
        "sigint_ignored": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        "environment": {k: os.environ[k] for k in SAFE_PATH_VARIABLES if k in os.environ},
        "cwd": os.getcwd(),
        "queue": getattr(sys.modules.get("queue"), "__file__", None),
    }
    if "numpy.random" in sys.modules:
        state["inherited_draw"] = float(np.random.random())
        reseed_inherited_numpy()
        state["draw"] = float(np.random.random())
    connection.send(state)


def main() -> None:
    modules = [fork_server.WORKER_MODULE]
    if "--numpy-random" in sys.argv:
        modules.append("numpy.random")
    if "--from-a-thread" in sys.argv:  # where no signal handler can be set
        chosen: list[str] = []
        thread = threading.Thread(target=lambda: chosen.append(fork_server.warm_fork_server()))
        thread.start()
        thread.join()
        start_method = chosen[0]
    else:
        start_method = fork_server.warm_fork_server(modules)
    context = multiprocessing.get_context(start_method)
    states = []
    for _ in range(2):
        ours, theirs = context.Pipe()
        process = context.Process(target=started_with, args=(theirs,))
        process.start()
        states.append(ours.recv())
        process.join()
    print(json.dumps({"start_method": start_method, "states": states}))


if __name__ == "__main__":
    main()
