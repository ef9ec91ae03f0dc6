"""A page of driver rows made into records without holding the event loop for long.

The cyclic garbage collector is paused while a page is read and made (`collector_paused`),
and the rows are made a slice at a time with a turn of the event loop between slices
(`records_a_slice_at_a_time`).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

R = TypeVar("R")


class _Collector:
    """Pauses of the cyclic garbage collector while pages of records are read; reads that
    overlap (tasks on one event loop) share one pause, and the collector runs again when the
    last of them is done, if it ran before the first began."""

    pauses = 0
    paused_it = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a page of records is read and made.

    A page makes thousands of records in one burst, all alive until it is done, while the
    driver's thread makes the rows of the next chunk; collecting meanwhile only walks them and
    pushes them into the older generations, which then trigger full collections of the whole
    process (measured: a fifth of the read's time when only the conversion was paused, a
    quarter of what was left when the fetch went on collecting). The records form no cycles,
    so nothing is left uncollected; the pause lasts one page, then the collector runs again.
    """
    if _Collector.pauses == 0:
        _Collector.paused_it = gc.isenabled()
        gc.disable()
    _Collector.pauses += 1
    try:
        yield
    finally:
        _Collector.pauses -= 1
        if _Collector.pauses == 0 and _Collector.paused_it:
            gc.enable()


RECORDS_SLICE: Final = 1000
"""Rows made into records between two turns of the event loop: a few milliseconds of work. A
page of 100,000 made in one go held the loop for 300 ms, measured."""


async def records_a_slice_at_a_time(
    records: Callable[[Sequence[Sequence[Any]]], list[R]], rows: Sequence[Sequence[Any]]
) -> list[R]:
    """`records(rows)`, giving the event loop a turn between slices of rows. A list
    of rows (what the drivers' fetch gives) is emptied as it goes, so each slice is freed once
    made: freeing a whole page of rows at the end held the loop for 60 ms, measured."""
    if len(rows) <= RECORDS_SLICE:
        return records(rows)
    rest = rows if isinstance(rows, list) else list(rows)
    made: list[R] = []
    while rest:
        made += records(rest[:RECORDS_SLICE])
        del rest[:RECORDS_SLICE]
        await asyncio.sleep(0)
    return made
