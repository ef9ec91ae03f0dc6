"""Where the order journal's batches go on PostgreSQL: the journal's kept connection
(ingest/postgres_connection.py), each batch one transaction of executemany's of ready driver
rows, its claims read first in the same transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.ingest.journal_batches import ClaimSettler, JournalBatch, holders
from quantflow_async.ingest.postgres_connection import KeptConnection
from quantflow_async.store.journal_batch import JournalStatements


class PostgresJournalStore:
    def __init__(self, engine: AsyncEngine, statements: JournalStatements, venue: str) -> None:
        self._kept = KeptConnection(engine)
        self._statements = statements
        self._venue = venue

    @property
    def pid(self) -> int | None:
        """The server process serving the journal's connection, while it has one."""
        return self._kept.pid

    async def write(self, batch: JournalBatch, claims: ClaimSettler) -> None:
        """Commit the batch, or drop the connection: a batch cut short is in doubt, and runs
        again on a new connection once the old one's server process is gone (every statement
        is idempotent)."""
        driver = await self._kept.open()
        try:
            async with driver.transaction():
                if batch.claims:
                    ids = [claim.venue_order_id for claim in batch.claims]
                    held = [
                        row
                        for query, parameters in self._statements.holder_queries(self._venue, ids)
                        for row in await driver.fetch(query, *parameters)
                    ]
                    claims.settle(holders(held), batch)
                for statement, rows in self._statements.steps(batch.rows):
                    await driver.executemany(statement, rows)
        except BaseException:
            await self._kept.abandon()
            raise

    async def aclose(self) -> None:
        await self._kept.aclose()
