"""How a process of ours runs Python's cyclic garbage collector: less often than the default.

A backtest allocates hundreds of thousands of objects that live for a bar or a fill (orders,
trades, rows), and a sweep's main process unpacks as many rows. With CPython's default first
threshold (700 allocations) the collector ran about 400 times in each sweep worker of the
README's sweep, and each pass over an older generation walks every object the process
imported: 14% of a worker's CPU. Only processes we own are tuned this way (a sweep's workers,
the `quantflow` program), never a program that calls the library.
"""

from __future__ import annotations

import gc
from typing import Final

FIRST_THRESHOLD: Final = 10_000
"""Allocations (less deallocations) of container objects between two collections of the
youngest generation; the older generations keep CPython's own thresholds. Garbage in
reference cycles then waits for at most this many allocations: a few MB."""


def collect_less_often() -> None:
    """Run the youngest generation's collection every FIRST_THRESHOLD allocations."""
    first, second, third = gc.get_threshold()
    if first:  # 0: collection is switched off, and stays off
        gc.set_threshold(max(first, FIRST_THRESHOLD), second, third)


def keep_what_is_loaded() -> None:
    """Leave every object alive now out of all later collections (`gc.freeze`): what a
    process loaded to work with (modules, data sets) lives as long as it does, and is no
    longer walked on every pass. At the end of a command, it also spares the interpreter's
    last collection on its way out, a tenth of a second after a sweep."""
    gc.freeze()
