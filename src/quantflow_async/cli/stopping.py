"""SIGTERM stops a command the way Ctrl-C does: what `timeout`, `kill`, `docker stop` and
systemd send then ends a sweep, a backtest or an export as cleanly as a person's Ctrl-C,
instead of killing the process with backtests left running and partial files behind."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from quantflow_async.cli.parsing import Handler


def sigterm_as_ctrl_c(handler: Handler) -> Handler:
    """`handler`, with SIGTERM delivered as SIGINT while it runs.

    Under `asyncio.run` SIGINT cancels the main task, so the command's cleanup runs (shielded
    status changes, a writer's flush, a temporary file removed), and then raises
    KeyboardInterrupt. After a SIGTERM that ends the command with "terminated" and status
    143 (128 + SIGTERM), as a shell reports a process SIGTERM ended; a second SIGTERM
    interrupts at once, as a second Ctrl-C does.
    """

    def handle(args: argparse.Namespace) -> None:
        if threading.current_thread() is not threading.main_thread():
            handler(args)  # signals are delivered to the main thread only: none to hand on
            return
        received: list[int] = []

        def on_sigterm(number: int, frame: FrameType | None) -> None:
            received.append(number)
            interrupt = signal.getsignal(signal.SIGINT)
            if callable(interrupt):  # asyncio.run's handler, or Python's default one
                interrupt(signal.SIGINT, frame)
            # SIGINT ignored (a sweep's workers starting): SIGTERM is, for that moment, too

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            handler(args)
        except KeyboardInterrupt:
            if not received:
                raise
            print("quantflow: error: terminated", file=sys.stderr)
            raise SystemExit(128 + signal.SIGTERM) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    return handle
