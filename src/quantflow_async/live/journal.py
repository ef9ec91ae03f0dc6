"""OrderJournal: what a live bot records about its orders, and what it finds after a restart.

`async with db.journal(strategy_id=s, venue="paper") as journal:`. An intent is committed in
its own transaction before `intend` returns; every later event is checked at once against the
journal's memory of the order (live/orders.py), then committed in a batch with the order's new
row, its trade and position (ingest/journal_writer.py). A refused event raises
OrderEventRefused and is stored as refused; nothing accepted changes. The journal is the only
writer for its (strategy, venue).
"""

from __future__ import annotations

import enum
import logging
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.closing import close_after_block
from quantflow_async.config import Settings, WriterOptions
from quantflow_async.errors import StorageError
from quantflow_async.ingest.journal_writer import JournalWriter
from quantflow_async.live.journal_entries import EventRows, checked_trade
from quantflow_async.live.journal_gate import RestoreGate
from quantflow_async.live.journal_intents import Intents
from quantflow_async.live.journal_lease import JournalLease
from quantflow_async.live.journal_lookup import OrderLookup
from quantflow_async.live.journal_memory import KnownOrders, tracked
from quantflow_async.live.journal_recorder import EventRecorder
from quantflow_async.live.journal_refusals import Refusals
from quantflow_async.live.orders import (
    OPEN_STATUSES,
    Change,
    JournalStats,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
    Restored,
    make_change,
)
from quantflow_async.live.venue import AssetBalance, Venue, VenueTrade
from quantflow_async.store.journal_batch import DriverForm
from quantflow_async.store.journal_fence import LeaseFence
from quantflow_async.store.order_journal import check_strategy, load_journal
from quantflow_async.validation import to_id, to_label, to_utc

if TYPE_CHECKING:
    from quantflow_async.live.reconcile import ReconcileReport

log = logging.getLogger(__name__)

# The events that carry nothing but their kind: one Change each, made once.
_SUBMITTED: Final = Change("submitted")
_CANCEL_REQUESTED: Final = Change("cancel_requested")
_CANCELLED: Final = Change("cancelled")


class JournalState(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class OrderJournal:
    """The order journal of one strategy on one venue. Make one with `Database.journal()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        strategy_id: int,
        venue: str,
        options: WriterOptions,
        settings: Settings | None = None,
    ) -> None:
        self.strategy_id = to_id(strategy_id, "strategy_id")
        self.venue = to_label(venue, "venue", 64)
        self._engine = engine
        self._rows = EventRows(self.strategy_id, self.venue, DriverForm(engine.dialect.name))
        self._known = KnownOrders(engine, self.strategy_id, self.venue)
        self._lease = JournalLease(engine, self.strategy_id, self.venue)
        self._cursors: dict[str, str] = {}
        self._writer = JournalWriter(
            engine, options, venue=self.venue, settings=settings, fence=self._lease_fence
        )
        self._refusals = Refusals(self._writer, self._rows)
        self._intents = Intents(engine, self._rows, self._known, self._refusals, self._lease_fence)
        self._lookup = OrderLookup(self._known, self._refusals, self._rows)
        self._writer.on_clash = self._lookup.refuse_claim
        self._recorder = EventRecorder(self._writer, self._rows, self._lookup, self._refusals)
        self._gate = RestoreGate()
        self.state = JournalState.NEW

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> OrderJournal:
        if self.state is not JournalState.NEW:
            raise StorageError("an OrderJournal opens once; make a new one")
        await check_strategy(self._engine, self.strategy_id)
        await self._lease.acquire()
        try:
            stored = await load_journal(
                self._engine, self.strategy_id, self.venue, with_orders=False
            )
        except BaseException:
            await self._lease.release()
            raise
        self._recorder.positions = {p.symbol: p for p in stored.positions}
        self._cursors = dict(stored.cursors)
        self._writer.start()
        self.state = JournalState.OPEN
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        block_error = exc_info[1]
        await close_after_block(
            self.aclose,
            block_error,
            StorageError,
            lambda: log.error("the journal failed while its block raised %r", block_error),
        )

    async def aclose(self) -> None:
        """Commit every accepted event, then stop. Idempotent; drains even when cancelled."""
        self.state = JournalState.CLOSED
        try:
            await self._writer.aclose()
        finally:
            with anyio.CancelScope(shield=True):
                await self._known.aclose()
                await self._lease.release()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "state", None) is JournalState.OPEN:
            _warn(
                "OrderJournal was never closed; use `async with db.journal(...) as journal:`",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    @property
    def client_id_prefix(self) -> str:
        """How the client order ids the journal makes begin: ours among a venue's orders."""
        return f"qf{self.strategy_id}x"

    @property
    def connection_pid(self) -> int | None:
        """The process of the journal's SQLite write connection (a worker of its own, started
        at the first batch), or None."""
        return self._writer.connection_pid

    @property
    def lease_pid(self) -> int | None:
        """On PostgreSQL, the server process holding the journal's lease while it is open;
        None on SQLite (a lock file)."""
        return self._lease.pid

    def _lease_fence(self) -> LeaseFence | None:
        return self._lease.fence

    def stats(self) -> JournalStats:
        written = self._intents.count + self._writer.events_written
        return JournalStats(written, self._recorder.duplicates, self._refusals.count)

    async def flush(self) -> None:
        """Return once every event recorded before this call is committed."""
        await self._writer.flush()

    # -- reading ---------------------------------------------------------------------------

    def position(self, symbol: str) -> Position | None:
        """The position in `symbol` with every fill recorded so far applied; no database read."""
        return self._recorder.positions.get(symbol)

    def cursor(self, stream: str) -> str | None:
        """The last venue event id recorded on `stream` (e.g. "trades:BTCUSDT"), or None."""
        return self._cursors.get(stream)

    async def reconcile(self, venue: Venue, *, symbols: Iterable[str] = ()) -> ReconcileReport:
        """Ask `venue` what became of this journal's orders and record every difference.

        See `quantflow_async.live.reconcile.reconcile`.
        """
        from quantflow_async.live.reconcile import reconcile

        return await reconcile(self, venue, symbols=symbols)

    def client_order_id_of(self, venue_order_id: str) -> str | None:
        """The client order id of the order the journal holds under `venue_order_id`, or None
        when it holds none in memory; no database read."""
        return self._known.owner_of(venue_order_id)

    def order(self, client_order_id: str) -> Order | None:
        """The order as the journal knows it now (every non-final order after restore(), and
        every order touched this session), or None; no database read."""
        tracked = self._known.get(client_order_id)
        return None if tracked is None else tracked.order

    async def restore(self) -> Restored:
        """What the venue may hold for this strategy, from the database: open and in-doubt
        orders, positions by symbol, cursors by stream. Events recorded before are committed
        first; events recorded by other tasks meanwhile wait for it (RestoreGate)."""
        self._check_open()
        async with self._gate.restoring():
            await self.flush()
            stored = await load_journal(
                self._engine, self.strategy_id, self.venue, with_orders=True
            )
            found = [self._known.remember(tracked(memory)) for memory in stored.orders]
            self._recorder.positions = {p.symbol: p for p in stored.positions}
            self._cursors = dict(stored.cursors)
        return Restored(
            open_orders=tuple(t.order for t in found if t.order.status in OPEN_STATUSES),
            in_doubt=tuple(t.order for t in found if t.order.status == "intended"),
            positions=dict(self._recorder.positions),
            cursors=dict(self._cursors),
        )

    # -- recording -------------------------------------------------------------------------

    async def intend(self, request: OrderRequest) -> Order:
        """Record an order before it is sent: committed when this returns."""
        self._check_open()
        return await self._intents.intend(request, self.client_id_prefix)

    async def submitted(self, client_order_id: str, *, wait: bool = False) -> None:
        """The order is on its way to the venue."""
        await self._record(client_order_id, _SUBMITTED, wait=wait)

    async def acknowledged(
        self,
        client_order_id: str,
        venue_order_id: str,
        *,
        occurred_at: datetime | None = None,
        wait: bool = False,
    ) -> None:
        """The venue has the order, under `venue_order_id`: it is open."""
        venue_order_id = to_label(venue_order_id, "venue_order_id")
        change = make_change("acknowledged", None, None, None, venue_order_id, None)
        await self._record(client_order_id, change, wait=wait, occurred_at=occurred_at)

    async def cancel_requested(self, client_order_id: str, *, wait: bool = False) -> None:
        """A cancel is on its way; the order's status stays until the venue answers."""
        await self._record(client_order_id, _CANCEL_REQUESTED, wait=wait)

    async def cancelled(
        self,
        client_order_id: str,
        *,
        reason: str | None = None,
        venue_event_id: str | None = None,
        wait: bool = False,
    ) -> None:
        """The venue cancelled the order; what filled before stays filled."""
        change = (
            _CANCELLED
            if venue_event_id is None
            else Change("cancelled", venue_event_id=venue_event_id)
        )
        await self._record(client_order_id, change, wait=wait, reason=reason)

    async def rejected(self, client_order_id: str, *, reason: str, wait: bool = False) -> None:
        """The venue refused the order, or it was never sent (reason "never_sent")."""
        await self._record(client_order_id, Change("rejected"), wait=wait, reason=reason)

    async def expired(
        self, client_order_id: str, *, reason: str | None = None, wait: bool = False
    ) -> None:
        """The venue expired the order (time in force, or funds gone)."""
        await self._record(client_order_id, Change("expired"), wait=wait, reason=reason)

    async def mark_unknown(self, client_order_id: str, *, reason: str, wait: bool = False) -> None:
        """The venue no longer knows an order the journal holds open: kept, as unknown."""
        change = Change("status", status="unknown")
        await self._record(client_order_id, change, wait=wait, reason=reason)

    async def set_status(
        self,
        client_order_id: str,
        status: OrderStatus,
        *,
        reason: str,
        venue_order_id: str | None = None,
        wait: bool = False,
    ) -> None:
        """Bring the order to the status the venue reports (reconciliation)."""
        change = Change("status", status=status, venue_order_id=venue_order_id)
        await self._record(client_order_id, change, wait=wait, reason=reason)

    async def filled(
        self,
        trade: VenueTrade,
        *,
        client_order_id: str | None = None,
        reason: str | None = None,
        wait: bool = False,
    ) -> bool:
        """Record one execution: the order's fill, its trade and the position move, in one
        transaction. False when the trade id was already journaled (a counted duplicate)."""
        self._check_open()
        trade = checked_trade(trade)
        change = make_change(
            "fill", None, trade.quantity, trade.price, trade.venue_order_id, trade.trade_id
        )
        async with self._gate:
            return await self._recorder.fill(
                trade, change, client_order_id, reason=reason, wait=wait
            )

    async def advance_cursor(self, stream: str, last_id: str, *, wait: bool = False) -> None:
        """Remember the last venue event seen on `stream` (e.g. "trades:BTCUSDT")."""
        self._check_open()
        stream, last_id = to_label(stream, "stream"), to_label(last_id, "last_id")
        async with self._gate:
            await self._recorder.cursor(stream, last_id, self._cursors, wait=wait)

    async def record_balances(
        self,
        balances: Mapping[str, AssetBalance],
        *,
        taken_at: datetime | None = None,
        wait: bool = False,
    ) -> None:
        """Store a snapshot of the venue's balances, by asset."""
        self._check_open()
        at = datetime.now(UTC) if taken_at is None else to_utc(taken_at, "taken_at")
        await self._recorder.balances(balances, at, wait=wait)

    # -- the machinery ---------------------------------------------------------------------

    async def _record(
        self,
        client_order_id: str,
        change: Change,
        *,
        wait: bool,
        reason: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        self._check_open()
        if occurred_at is not None:
            occurred_at = to_utc(occurred_at, "occurred_at")
        async with self._gate:
            await self._recorder.record(
                client_order_id, change, wait=wait, reason=reason, occurred_at=occurred_at
            )

    def _check_open(self) -> None:
        if self.state is not JournalState.OPEN:
            raise StorageError(
                f"the journal is {self.state.value}; use `async with db.journal(...) as journal:`"
            )
        self._writer.check()
