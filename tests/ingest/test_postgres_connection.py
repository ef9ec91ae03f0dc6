"""The connection a writer or journal keeps on PostgreSQL: after a batch cut short, its
server process is ended and waited out before the next attempt. A process is known by its
number and its start, since the kernel gives a number again (after a server restart)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import anyio
import asyncpg
import pytest

from quantflow_async import Database
from quantflow_async.ingest.postgres_connection import KeptConnection

from ..support.server_processes import dsn

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_database_url: str) -> AsyncIterator[Database]:
    async with Database(postgres_database_url) as database:
        yield database


async def test_an_abandoned_server_process_is_gone_before_the_next_connection_is_used(
    pg: Database,
) -> None:
    kept = KeptConnection(pg.engine)
    await kept.open()
    first = kept.pid
    await kept.abandon()
    driver = await kept.open()
    assert await driver.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", first) == 0
    await kept.aclose()


async def test_a_number_the_kernel_gave_to_another_client_since_is_left_alone(
    pg: Database,
) -> None:
    """As after a server restart: the abandoned process's number now serves a bystander."""
    bystander = await asyncpg.connect(dsn(pg))
    try:
        kept = KeptConnection(pg.engine)
        earlier = datetime(2000, 1, 1, tzinfo=UTC)
        kept._abandoned.add((bystander.get_server_pid(), earlier))
        await kept.open()
        with anyio.fail_after(10):
            assert await bystander.fetchval("SELECT 1") == 1
        assert kept._abandoned == set()
        await kept.aclose()
    finally:
        bystander.terminate()  # closes at once, also when the server ended it
