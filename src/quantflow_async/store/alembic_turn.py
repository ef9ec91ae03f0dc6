"""One Alembic run at a time in this process.

Alembic keeps the migration it runs in module globals (`alembic.context`, `alembic.op`): two
runs at once, even on different event loops or threads and of different databases, would
each run in the other's context. A run waits for its turn without blocking its event loop.
Migrations of one database by several processes wait for each other in the database
(MIGRATION_LOCK, taken by alembic/env.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import anyio

log = logging.getLogger(__name__)

MIGRATION_LOCK: Final = 0x7166_6D69_6772_6174
"""The PostgreSQL advisory lock a migration holds in its transaction: ASCII "qfmigrat".
Never change it: a migration by an older release must wait on the same key."""

WAIT_WARNING_SECONDS: Final = 30.0
"""How long a run waits for its turn before a warning says what it is waiting for."""

_holder_guard = threading.Lock()
_holder: asyncio.AbstractEventLoop | None = None
"""The event loop whose run has the turn; None when no run has it."""


@asynccontextmanager
async def alembic_turn() -> AsyncIterator[None]:
    """Hold this process's one turn to run Alembic for the length of the block."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    warned = False
    # Polled: a thread blocked on a lock could not be cancelled, and would take the turn for
    # nobody once its waiter was gone.
    while not _take(loop):
        if not warned and time.monotonic() - started > WAIT_WARNING_SECONDS:
            log.warning(
                "a migration has waited %.0fs for another one in this process to finish",
                WAIT_WARNING_SECONDS,
            )
            warned = True
        await anyio.sleep(0.01)
    try:
        yield
    finally:
        _give_back(loop)


def _take(loop: asyncio.AbstractEventLoop) -> bool:
    global _holder
    with _holder_guard:
        # A run whose event loop was closed under it can never finish: its turn is over.
        if _holder is None or _holder.is_closed():
            _holder = loop
            return True
        return False


def _give_back(loop: asyncio.AbstractEventLoop) -> None:
    global _holder
    with _holder_guard:
        if _holder is loop:
            _holder = None
