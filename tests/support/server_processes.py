"""PostgreSQL server processes ended as the server ends them, at a moment a test chooses."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from quantflow_async import Database
from quantflow_async.ingest.postgres_connection import KeptConnection, ServerProcess


def dsn(db: Database) -> str:
    """`db`'s URL as asyncpg takes it."""
    url = db.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def end_server_process(db: Database, pid: int) -> None:
    """End server process `pid` as the server does, and wait until it is gone."""
    connection = await asyncpg.connect(dsn(db))
    try:
        await connection.execute("SELECT pg_terminate_backend($1)", pid)
        with anyio.fail_after(30):
            while await connection.fetchval("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid):
                await anyio.sleep(0.01)
    finally:
        await connection.close()


def end_the_first_waiting_connection(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[int], list[int]]:
    """The first new connection that waits out an abandoned server process is ended by the
    server just before it asks: (the connections ended so, the processes waited out)."""
    outlive = KeptConnection._outlive
    ended: list[int] = []
    outlived: list[int] = []

    async def ended_while_waiting(kept: KeptConnection, process: ServerProcess) -> None:
        if not ended:
            waiting = kept.pid
            assert waiting is not None
            ended.append(waiting)
            await end_server_process(db, waiting)
        await outlive(kept, process)
        outlived.append(process[0])

    monkeypatch.setattr(KeptConnection, "_outlive", ended_while_waiting)
    return ended, outlived
