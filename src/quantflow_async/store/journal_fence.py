"""The fence that keeps a journal whose PostgreSQL lease was lost from writing.

A journal's lease is a session advisory lock on a connection of its own (live/journal_lease.py).
That connection can end while the bot runs on: a server restart, an idle-session timeout, a
proxy dropping idle connections, `pg_terminate_backend`. The lock goes with it, and a second
journal may open on the same strategy and venue. So every write transaction of the journal
first asks, in that transaction, whether its lease's session still holds the lock (the session
known by its process number and start, as a number alone is reused); if not, nothing is
written and the journal stops.

A write that asked just before the lease was lost could still commit after the second
journal read its state. To close that gap each write holds the fence key shared for its
transaction, and a journal that takes the lease takes the fence key exclusively once, which
waits for the writes already under way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from quantflow_async.errors import StorageError

FENCE_CHECK: Final = """
SELECT EXISTS (
    SELECT 1
    FROM pg_locks AS held JOIN pg_stat_activity AS session ON session.pid = held.pid
    WHERE held.locktype = 'advisory' AND held.granted AND held.mode = 'ExclusiveLock'
      AND held.classid = $2 AND held.objid = $3 AND held.objsubid = 1
      AND held.pid = $4 AND session.backend_start = $5
)
FROM (SELECT pg_advisory_xact_lock_shared($1)) AS fence
"""
"""Takes the fence key shared for the transaction; whether the lease is still held."""


@dataclass(frozen=True, slots=True)
class LeaseFence:
    """A held lease, as a write transaction checks it."""

    name: str
    lock_key: int
    fence_key: int
    pid: int
    started: datetime

    def arguments(self) -> tuple[Any, ...]:
        """FENCE_CHECK's parameters: pg_locks shows a bigint key as two unsigned halves."""
        unsigned = self.lock_key & 0xFFFF_FFFF_FFFF_FFFF
        return (self.fence_key, unsigned >> 32, unsigned & 0xFFFF_FFFF, self.pid, self.started)

    def lost(self) -> StorageError:
        return StorageError(
            f"the lease of the {self.name} was lost (its connection, server process "
            f"{self.pid}, ended): another journal may have opened, so this one writes no "
            "more"
        )


async def check_fence(conn: AsyncConnection, fence: LeaseFence | None) -> None:
    """Raise StorageError, writing nothing, unless the lease is held (SQLAlchemy)."""
    if fence is None:
        return
    held = (await conn.exec_driver_sql(FENCE_CHECK, fence.arguments())).scalar_one()
    if not held:
        raise fence.lost()


async def check_fence_on(driver: Any, fence: LeaseFence | None) -> None:
    """The same on an asyncpg connection, inside its transaction."""
    if fence is None:
        return
    if not await driver.fetchval(FENCE_CHECK, *fence.arguments()):
        raise fence.lost()
