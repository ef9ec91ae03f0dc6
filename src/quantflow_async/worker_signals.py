"""The stop signals a child process leaves to the process that started it.

Ctrl-C reaches every process of the terminal's foreground group, and SIGTERM often does too:
`timeout` sends it to its whole group, systemd to every process of the service. The main
process owns the stop (it drains, records what was cancelled, then ends its children), so a
sweep's workers, the fork server and the SQLite writer's worker ignore both: killed by them
half-way, a child would only be replaced or retried, and say so in alarming words. Each
child still ends with its parent (its pipe closes, or the kernel kills it).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def leave_stop_signals_to_parent() -> None:
    """Ignore SIGINT and SIGTERM in this (child) process."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)


@contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while child processes start, then their handlers back.

    An ignored signal stays ignored across fork and exec, so a child still importing when
    one arrives does not die of it (a stop signal in that moment is lost to this process
    too). Only the main thread may set handlers: from another, nothing is changed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            # None: a handler set outside Python, which was the default one
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
