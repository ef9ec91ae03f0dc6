"""Reconciliation: bring the order journal level with what the venue says, after a restart.

Every difference becomes a journal event (reason "reconciled"), applied in an order that never
puts an event before the one it depends on; nothing the journal never intended is invented.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeGuard

from quantflow_async.errors import OrderEventRefused
from quantflow_async.live.venue import AssetBalance, Venue, VenueOrder, VenueTrade

if TYPE_CHECKING:
    from quantflow_async.live.journal import OrderJournal
    from quantflow_async.live.orders import Order

log = logging.getLogger(__name__)

REASON = "reconciled"
NEVER_SENT = "never_sent"
_NEVER_ACKNOWLEDGED = frozenset({"intended", "submitted"})


def trades_stream(symbol: str) -> str:
    """The journal cursor that holds the last venue trade id journaled for `symbol`."""
    return f"trades:{symbol}"


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one reconciliation recorded in the journal, and what it found and left alone.

    Orders are named by client order id, fills by venue trade id. `stray_*` are venue records
    whose client id carries this journal's prefix but which the journal never recorded (an
    intent is durable before anything is sent, so each one is worth a look); a stray trade is
    offered to the journal, whose refusal is its only trace there. `foreign_*` are someone
    else's and never touch the journal. `refused` holds the journal's reason for each event it
    refused (kept there as refused).
    """

    never_sent: tuple[str, ...] = ()
    acknowledged: tuple[str, ...] = ()
    fills_recorded: tuple[str, ...] = ()
    duplicate_fills: tuple[str, ...] = ()
    status_changes: tuple[tuple[str, str, str], ...] = ()
    """(client order id, status before, status after)."""
    missing_at_venue: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    stray_orders: tuple[VenueOrder, ...] = ()
    stray_trades: tuple[VenueTrade, ...] = ()
    foreign_orders: tuple[VenueOrder, ...] = ()
    foreign_trades: tuple[VenueTrade, ...] = ()
    balances: Mapping[str, AssetBalance] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def changed(self) -> bool:
        """Whether any order event was recorded (balances aside)."""
        return bool(
            self.never_sent
            or self.acknowledged
            or self.fills_recorded
            or self.status_changes
            or self.missing_at_venue
        )

    def summary(self) -> list[str]:
        """Lines for a person: what was recorded, then what needs a look."""
        lines = [
            f"acknowledged {len(self.acknowledged)}, never sent {len(self.never_sent)}, "
            f"fills recorded {len(self.fills_recorded)} "
            f"(duplicates {len(self.duplicate_fills)}), status changes {len(self.status_changes)}"
        ]
        lines += [f"  {cid}: {before} -> {after}" for cid, before, after in self.status_changes]
        lines += [f"  {cid}: rejected, never sent" for cid in self.never_sent]
        lines += [f"missing at the venue, now unknown: {cid}" for cid in self.missing_at_venue]
        lines += [f"refused by the journal: {reason}" for reason in self.refused]
        lines += [f"ours but never journaled: {_order_line(o)}" for o in self.stray_orders]
        lines += [f"ours but never journaled: {_trade_line(t)}" for t in self.stray_trades]
        if self.foreign_orders or self.foreign_trades:
            lines.append(
                f"foreign, left alone: {len(self.foreign_orders)} open orders, "
                f"{len(self.foreign_trades)} trades"
            )
        balances = ", ".join(f"{b.asset} {b.total:f}" for b in self.balances.values())
        lines.append(f"balances: {balances or 'none'}")
        return lines


async def reconcile(
    journal: OrderJournal, venue: Venue, *, symbols: Iterable[str] = ()
) -> ReconcileReport:
    """Ask `venue` what became of the journal's orders and record every difference.

    Looks at the symbols of the journal's unfinished orders, positions and trade cursors, plus
    `symbols`. A `VenueError` propagates; the events recorded before it stand on their own.
    """
    state = await journal.restore()
    ours = {o.client_order_id: o for o in (*state.in_doubt, *state.open_orders)}
    markets = sorted(
        {o.symbol for o in ours.values()}
        | set(state.positions)
        | {s.removeprefix("trades:") for s in state.cursors if s.startswith("trades:")}
        | set(symbols)
    )
    # One look at each market's open orders answers for most of ours; only the orders not
    # among them (finished, or never received) are asked for one by one.
    open_at_venue = {symbol: await venue.fetch_open_orders(symbol) for symbol in markets}
    at_venue: dict[str, VenueOrder] = {
        found.client_order_id: found
        for listed in open_at_venue.values()
        for found in listed
        if found.client_order_id in ours
    }
    for cid, order in ours.items():
        if cid in at_venue:
            continue
        found = await venue.fetch_order(order.symbol, client_order_id=cid)
        if found is not None:
            at_venue[cid] = found

    run = _Run(journal, venue)
    await run.acknowledge(ours, at_venue)
    owners = {o.venue_order_id: cid for cid, o in ours.items() if o.venue_order_id is not None}
    owners.update((found.venue_order_id, cid) for cid, found in at_venue.items())
    for symbol in markets:
        await run.fills(symbol, state.cursors.get(trades_stream(symbol)), owners)
    await run.settle_statuses(at_venue)
    await run.settle_absent(cid for cid in ours if cid not in at_venue)
    for listed in open_at_venue.values():
        run.unknown_open_orders(listed)
    balances = MappingProxyType(dict(await venue.fetch_balance()))
    await journal.record_balances(balances)
    await journal.flush()
    report = run.report(balances)
    for line in report.summary():
        log.info("reconcile %s: %s", venue.name, line)
    return report


async def record_new_fills(journal: OrderJournal, venue: Venue, symbol: str) -> ReconcileReport:
    """Journal the venue's trades on `symbol` after the journal's trade cursor, as
    reconciliation does: each of ours once, others' listed in the report and left alone, the
    cursor moved past them. The live runner calls this after each decision."""
    run = _Run(journal, venue, fill_reason=None)
    await run.fills(symbol, journal.cursor(trades_stream(symbol)), {})
    return run.report(MappingProxyType({}))


class _Run:
    """One reconciliation's steps and what each found."""

    def __init__(
        self, journal: OrderJournal, venue: Venue, *, fill_reason: str | None = REASON
    ) -> None:
        self.journal = journal
        self.venue = venue
        self.fill_reason = fill_reason
        self.never_sent: list[str] = []
        self.acknowledged: list[str] = []
        self.recorded: list[str] = []
        self.duplicates: list[str] = []
        self.status_changes: list[tuple[str, str, str]] = []
        self.missing: list[str] = []
        self.refused: list[str] = []
        self.stray_orders: list[VenueOrder] = []
        self.stray_trades: list[VenueTrade] = []
        self.foreign_orders: list[VenueOrder] = []
        self.foreign_trades: list[VenueTrade] = []

    async def acknowledge(
        self, ours: Mapping[str, Order], at_venue: Mapping[str, VenueOrder]
    ) -> None:
        """Step 1: the venue ids the journal never saw, so that fills find their order."""
        for cid, found in at_venue.items():
            if ours[cid].venue_order_id is None and await self._accepted(
                self.journal.acknowledged(cid, found.venue_order_id, occurred_at=found.updated_at)
            ):
                self.acknowledged.append(cid)

    async def fills(self, symbol: str, cursor: str | None, owners: dict[str, str]) -> None:
        """Steps 2 and 5: every trade after the cursor journaled once, then the cursor moved."""
        trades = await self.venue.fetch_my_trades(symbol, after_trade_id=cursor)
        for trade in trades:
            cid = await self._owner(trade, owners)
            if not self.is_ours(cid):
                self.foreign_trades.append(trade)
                continue
            try:
                new = await self.journal.filled(trade, client_order_id=cid, reason=self.fill_reason)
            except OrderEventRefused as refused:
                # A final order of ours from an earlier session is found in the database; an
                # order the journal still does not know after the attempt was never intended.
                if self.journal.order(cid) is None:
                    self.stray_trades.append(trade)
                else:
                    self.refused.append(str(refused))
                continue
            (self.recorded if new else self.duplicates).append(trade.trade_id)
        if trades:
            await self.journal.advance_cursor(trades_stream(symbol), trades[-1].trade_id)

    async def settle_statuses(self, at_venue: Mapping[str, VenueOrder]) -> None:
        """Step 3: the venue's status wherever the journal's still differs after the fills."""
        for cid, found in at_venue.items():
            order = self.journal.order(cid)
            if order is None or order.status == found.status:
                continue
            if await self._accepted(
                self.journal.set_status(
                    cid, found.status, reason=REASON, venue_order_id=found.venue_order_id
                )
            ):
                self.status_changes.append((cid, order.status, found.status))

    async def settle_absent(self, absent: Iterable[str]) -> None:
        """Step 4: an order the venue never received is rejected; one it lost is unknown."""
        for cid in absent:
            order = self.journal.order(cid)
            # Its trades may have finished it (a venue can purge a filled order's record).
            if order is None or order.is_final or order.status == "unknown":
                continue
            if order.status in _NEVER_ACKNOWLEDGED and order.venue_order_id is None:
                if await self._accepted(self.journal.rejected(cid, reason=NEVER_SENT)):
                    self.never_sent.append(cid)
            elif await self._accepted(self.journal.mark_unknown(cid, reason=REASON)):
                self.missing.append(cid)

    def unknown_open_orders(self, listed: Iterable[VenueOrder]) -> None:
        """The venue's open orders the journal does not hold: listed, never journaled."""
        for order in listed:
            cid = order.client_order_id
            if cid is None or self.journal.order(cid) is None:
                (self.stray_orders if self.is_ours(cid) else self.foreign_orders).append(order)

    async def _accepted(self, event: Awaitable[None]) -> bool:
        """Record `event`; a refusal is kept by the journal and reported, not raised."""
        try:
            await event
        except OrderEventRefused as refused:
            self.refused.append(str(refused))
            return False
        return True

    def is_ours(self, cid: str | None) -> TypeGuard[str]:
        return cid is not None and cid.startswith(self.journal.client_id_prefix)

    async def _owner(self, trade: VenueTrade, owners: dict[str, str]) -> str | None:
        """The client order id of `trade`'s order, asking the venue about orders not yet seen."""
        known = self.journal.client_order_id_of(trade.venue_order_id)
        if known is not None:
            return known
        if trade.venue_order_id not in owners:
            order = await self.venue.fetch_order(trade.symbol, venue_order_id=trade.venue_order_id)
            if order is None or order.client_order_id is None:
                return None
            owners[trade.venue_order_id] = order.client_order_id
        return owners[trade.venue_order_id]

    def report(self, balances: Mapping[str, AssetBalance]) -> ReconcileReport:
        return ReconcileReport(
            never_sent=tuple(self.never_sent),
            acknowledged=tuple(self.acknowledged),
            fills_recorded=tuple(self.recorded),
            duplicate_fills=tuple(self.duplicates),
            status_changes=tuple(self.status_changes),
            missing_at_venue=tuple(self.missing),
            refused=tuple(self.refused),
            stray_orders=tuple(self.stray_orders),
            stray_trades=tuple(self.stray_trades),
            foreign_orders=tuple(self.foreign_orders),
            foreign_trades=tuple(self.foreign_trades),
            balances=balances,
        )


def _order_line(order: VenueOrder) -> str:
    return (
        f"order {order.client_order_id} (venue id {order.venue_order_id}): {order.side} "
        f"{order.quantity:f} {order.symbol}, {order.status}"
    )


def _trade_line(trade: VenueTrade) -> str:
    return (
        f"trade {trade.trade_id} of venue order {trade.venue_order_id}: {trade.side} "
        f"{trade.quantity:f} {trade.symbol} at {trade.price:f}"
    )
