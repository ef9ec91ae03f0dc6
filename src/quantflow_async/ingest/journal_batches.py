"""A batch the journal writer took from its queue: its entries, the rows they write, and the
venue order ids they claim, settled against the orders that already hold them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from quantflow_async.ingest.journal_tickets import Claim, ClashHandler, Ticket
from quantflow_async.ingest.sqlite_worker import JournalGuard, SqliteWorkerStore
from quantflow_async.store.journal_batch import (
    JournalEntry,
    JournalRows,
    JournalStatements,
    keeping_venue_id,
)

Holders = dict[str, tuple[int, str]]
"""Venue order id: the (order id, client order id) of the order that holds it."""


@dataclass(slots=True, eq=False)
class JournalBatch:
    """One transaction's worth of entries, in the order they were recorded."""

    entries: list[tuple[JournalEntry, Ticket]]
    key: str
    rows: JournalRows = field(default_factory=JournalRows)
    claims: list[Claim] = field(default_factory=list)
    """Claims still to be checked against the database (refused ones are settled)."""
    refused: dict[Ticket, BaseException] = field(default_factory=dict)
    sent: bool = False
    """Sent to the SQLite worker, its reply not read yet."""

    @classmethod
    def of(cls, entries: list[tuple[JournalEntry, Ticket]], key: str) -> JournalBatch:
        batch = cls(entries, key)
        rows, claims = batch.rows, batch.claims
        for entry, ticket in entries:
            entry.add_to(rows)
            if entry.claim is not None and entry.order is not None:
                claims.append(Claim(len(rows.events) - 1, entry.order[-1], entry.claim, ticket))
        return batch

    @property
    def tickets(self) -> list[Ticket]:
        return [ticket for _, ticket in self.entries]

    async def send(
        self,
        worker: SqliteWorkerStore,
        statements: JournalStatements,
        venue: str,
        *,
        after: bool,
    ) -> None:
        """Send the batch to the SQLite worker, guarded by the reads of its claims."""
        guard: JournalGuard | None = None
        if self.claims:
            claimed = {claim.venue_order_id: claim.order_id for claim in self.claims}
            reads = statements.holder_queries(venue, list(claimed))
            guard = ([(query, list(parameters)) for query, parameters in reads], claimed)
        await worker.send_journal(self.key, guard, statements.steps(self.rows), after=after)
        self.sent = True


class ClaimSettler:
    """Refuses the claims other orders hold, and remembers them for the batches after: an
    order whose claim was refused keeps its stored venue order id, as unknown."""

    def __init__(self, on_clash: ClashHandler | None) -> None:
        self.on_clash = on_clash
        self._refused_claims: dict[int, str] = {}

    def settle(self, held: Holders, batch: JournalBatch) -> None:
        """Refuse each of the batch's claims that `held` gives to another order; the others
        stay, to be checked again if the batch is run again."""
        kept: list[Claim] = []
        for claim in batch.claims:
            holder = held.get(claim.venue_order_id)
            if holder is None or holder[0] == claim.order_id or self.on_clash is None:
                kept.append(claim)
                continue
            event, error = self.on_clash(claim.order_id, claim.venue_order_id, holder[1])
            batch.rows.events[claim.event_index] = event
            batch.refused[claim.ticket] = error
            self._refused_claims[claim.order_id] = claim.venue_order_id
        batch.claims = kept
        self.keep_refused_claims_out(batch.rows)

    def keep_refused_claims_out(self, rows: JournalRows) -> None:
        for order_id, venue_order_id in self._refused_claims.items():
            order = rows.orders.get(order_id)
            if order is not None and order[3] == venue_order_id:
                del rows.orders[order_id]
                rows.orders_keeping_venue_id[order_id] = keeping_venue_id(order, "unknown")


def holders(rows: Sequence[Sequence[Any]]) -> Holders:
    """Holders from rows of (order id, client order id, venue order id)."""
    return {venue_order_id: (order_id, client) for order_id, client, venue_order_id in rows}
