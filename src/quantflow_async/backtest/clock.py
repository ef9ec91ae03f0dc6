"""The clock a run shares between its strategy's data and its broker: how many bars are seen."""

from __future__ import annotations


class Clock:
    """How many bars are visible: all of them during `init`, bars 0..i during bar i's `next`."""

    __slots__ = ("end",)

    def __init__(self, end: int) -> None:
        self.end = end
