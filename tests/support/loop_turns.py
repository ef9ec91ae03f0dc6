"""Counting the turns a task of its own gets on the event loop: how a test sees that other
work let the loop run, without timing anything."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio.lowlevel


class LoopTurns:
    """The number of turns the counting task has had so far."""

    def __init__(self) -> None:
        self.count = 0

    async def keep_counting(self) -> None:
        while True:
            self.count += 1
            await anyio.lowlevel.checkpoint()


@contextlib.asynccontextmanager
async def loop_turns_counted() -> AsyncIterator[LoopTurns]:
    """A task counting its turns on the event loop for the length of the block; it has had
    its first turn when the block begins. (A task, not a task group: a fixture's set-up and
    tear-down may run in different tasks.)"""
    turns = LoopTurns()
    counting = asyncio.ensure_future(turns.keep_counting())
    try:
        await anyio.lowlevel.checkpoint()
        yield turns
    finally:
        counting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counting
