"""The gate between recording events and restoring the journal's memory from the database.

`restore()` replaces the orders, positions and cursors the journal holds with what is stored.
An event recorded into memory while that read is under way, but committed after it, would be
lost from memory (and a later event checked against the older state). So recordings pass the
gate side by side, and a restore waits for those under way, holds new ones back, and lets
them on once memory is replaced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel


class RestoreGate:
    """`async with gate:` around a recording; `async with gate.restoring():` around a restore."""

    def __init__(self) -> None:
        self._recording = 0
        self._held_back = 0
        self._restored: anyio.Event | None = None  # set while a restore holds the gate
        self._drained: anyio.Event | None = None  # set when the last recording leaves

    async def __aenter__(self) -> None:
        if self._restored is not None:
            self._held_back += 1
            try:
                while self._restored is not None:
                    await self._restored.wait()
            finally:
                self._held_back -= 1
        self._recording += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._recording -= 1
        if self._recording == 0 and self._drained is not None:
            self._drained.set()

    @asynccontextmanager
    async def restoring(self) -> AsyncIterator[None]:
        """Hold new recordings back, wait for those under way, then run the block."""
        # Another restore first, then the recordings it held back: a task restoring in a loop
        # must not keep them out for good.
        while self._restored is not None or self._held_back:
            if self._restored is not None:
                await self._restored.wait()
            else:
                await anyio.lowlevel.checkpoint()
        restored = self._restored = anyio.Event()
        try:
            if self._recording:
                self._drained = anyio.Event()
                await self._drained.wait()
            yield
        finally:
            self._restored = self._drained = None
            restored.set()
