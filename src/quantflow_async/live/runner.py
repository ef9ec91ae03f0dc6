"""The live runner: a backtest `Strategy`, unchanged, deciding on a venue's closed bars.

On start it restores the journal and reconciles it with the venue before the first decision.
Then, each time a bar closes, the strategy's `next` runs on the bars so far; its orders are
sized and timed by the backtest's own broker, mirrored on the venue's account, and each
execution the broker would make at the new bar's open is sent as a journaled market order.
On the paper exchange, which fills a market order at the open of the bar it arrives in, the
fills are the backtest's. A stop (Ctrl-C, SIGTERM, `stop.set()`) ends deciding: a venue call
in progress is not tried again, so an unreachable venue is not waited for; open orders are
cancelled when asked (with retries), and the journal is flushed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio

from quantflow_async.backtest.broker import Broker, Execution
from quantflow_async.backtest.strategy import Clock, Strategy
from quantflow_async.errors import InvalidValue, VenueError, VenueUnavailable
from quantflow_async.live.bar_feed import BarFeed, BarsSoFar
from quantflow_async.live.order_flow import cancel_open_orders, send_order, sync_fills
from quantflow_async.live.reconcile import ReconcileReport
from quantflow_async.live.symbols import split_symbol
from quantflow_async.live.venue import Venue
from quantflow_async.live.venue_retry import no_retries_once

if TYPE_CHECKING:
    from quantflow_async.database import Database
    from quantflow_async.live.journal import OrderJournal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """How the live runner trades one symbol.

    `commission` is the venue's fee rate as a fraction of notional: the broker mirror sizes
    orders with it, as the backtest does. `poll_interval` is how often the venue's bars are
    asked for (seconds). The runner stops after `max_bars` decisions, or when no new bar has
    started for `idle_exit` seconds (the end of a replay), if either is set.
    """

    symbol: str
    timeframe: str = "1m"
    commission: float = 0.0
    quote_asset: str | None = None
    poll_interval: float = 0.05
    cancel_on_exit: bool = False
    max_bars: int | None = None
    idle_exit: float | None = None

    def __post_init__(self) -> None:
        split_symbol(self.symbol, self.quote_asset)
        _check_number("commission", self.commission, low=0.0, high=1.0)
        _check_number("poll_interval", self.poll_interval, low=0.001, high=3600.0)
        if self.idle_exit is not None:
            _check_number("idle_exit", self.idle_exit, low=0.001, high=math.inf)
        if self.max_bars is not None and (
            isinstance(self.max_bars, bool)
            or not isinstance(self.max_bars, int)
            or self.max_bars < 1
        ):
            raise InvalidValue("max_bars", f"must be a whole number >= 1, got {self.max_bars!r}")


@dataclass(slots=True)
class LiveRunReport:
    """What a live run did: decisions taken, orders sent, and what reconciliation found."""

    reconciled: ReconcileReport | None = None
    bars_decided: int = 0
    orders_sent: int = 0
    orders_rejected: int = 0
    orders_cancelled_on_exit: int = 0
    stopped_by: str = "stop"


async def run_live(
    db: Database,
    strategy: type[Strategy],
    config: Mapping[str, Any] | None,
    venue: Venue,
    *,
    strategy_id: int,
    options: LiveOptions,
    stop: anyio.Event | None = None,
) -> LiveRunReport:
    """Trade `strategy` on `venue` until `stop` is set, `max_bars` or `idle_exit` says so."""
    instance = strategy(config)
    stop = stop or anyio.Event()
    report = LiveRunReport()
    async with db.journal(strategy_id=strategy_id, venue=venue.name) as journal:
        await journal.restore()
        try:
            with no_retries_once(stop):
                try:
                    report.reconciled = await journal.reconcile(venue, symbols=(options.symbol,))
                except VenueUnavailable as exc:
                    if not stop.is_set():
                        raise
                    log.warning("%s; stopped before the reconciliation ended: nothing decided", exc)
                else:
                    await _Session(journal, venue, instance, options, report).trade(stop)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    if options.cancel_on_exit:
                        report.orders_cancelled_on_exit = await _cancel_on_exit(
                            journal, venue, options.symbol
                        )
                finally:
                    await journal.flush()
    return report


async def _cancel_on_exit(journal: OrderJournal, venue: Venue, symbol: str) -> int:
    """Cancel our open orders on `symbol`; a venue that cannot do it is an error that says
    our orders may be left open there, which a caller stopping for good must know."""
    try:
        return await cancel_open_orders(journal, venue, symbol)
    except VenueError as exc:
        raise VenueError(
            venue.name,
            f"cancelling our open {symbol} orders on exit failed, so some may still be open "
            f"on the venue ({exc}); `quantflow orders list --status open partially_filled` "
            "shows those the journal holds open",
        ) from exc


class _Session:
    """One run's state: the bar feed and the broker mirror."""

    def __init__(
        self,
        journal: OrderJournal,
        venue: Venue,
        strategy: Strategy,
        options: LiveOptions,
        report: LiveRunReport,
    ) -> None:
        self.journal = journal
        self.venue = venue
        self.strategy = strategy
        self.options = options
        self.report = report
        self.base, self.quote = split_symbol(options.symbol, options.quote_asset)
        self.feed = BarFeed(venue, options.symbol, options.timeframe)
        self.broker: Broker | None = None
        self.first_decision: int | None = None
        self.reconcile_due = False

    async def trade(self, stop: anyio.Event) -> None:
        last_new_bar = time.monotonic()
        while not stop.is_set():
            so_far = await self._poll(stop)
            now = time.monotonic()
            if so_far is None:
                if (
                    self.options.idle_exit is not None
                    and now - last_new_bar > self.options.idle_exit
                ):
                    self.report.stopped_by = "idle"
                    return
                with anyio.move_on_after(self.options.poll_interval):
                    await stop.wait()
                continue
            last_new_bar = now
            if self.first_decision is None:
                # Bars that closed before the runner started were decided by an earlier run,
                # or by nobody: the first decision is on the next bar that closes.
                self.first_decision = so_far.closed
                continue
            try:
                if self.reconcile_due:
                    await self._reconcile()
                await self._decide(so_far)
            except VenueUnavailable as exc:
                # An order may be left submitted: what reached the venue is found out by the
                # reconciliation before the next decision; the mirror is rebuilt from the venue.
                log.warning("%s; reconciling before the next decision", exc)
                self.reconcile_due = True
                self.broker = None
                continue
            if (
                self.options.max_bars is not None
                and self.report.bars_decided >= self.options.max_bars
            ):
                self.report.stopped_by = "max_bars"
                return
        self.report.stopped_by = "stop"

    async def _poll(self, stop: anyio.Event) -> BarsSoFar | None:
        """New bars, or None; a stop cuts the poll short, and an unreachable venue is waited
        for (a decision on a bar that closed meanwhile is not taken late)."""
        async with anyio.create_task_group() as group:

            async def cut_short() -> None:
                await stop.wait()
                group.cancel_scope.cancel()

            group.start_soon(cut_short)
            try:
                return await self.feed.poll()
            except VenueUnavailable as exc:
                if not stop.is_set():
                    log.warning("%s; waiting for it", exc)
                self.reconcile_due = True
                return None
            finally:
                group.cancel_scope.cancel()
        return None  # cut short by the stop

    async def _reconcile(self) -> None:
        report = await self.journal.reconcile(self.venue, symbols=(self.options.symbol,))
        for line in report.summary():
            log.info("reconciled after the venue came back: %s", line)
        self.reconcile_due = False

    async def _decide(self, so_far: BarsSoFar) -> None:
        """Run `next` on the bar that just closed; send what the broker fills at the new open."""
        bars, forming = so_far.bars, so_far.closed
        decided = forming - 1
        broker = await self._mirror(so_far)
        clock = Clock(len(bars))
        self.strategy.attach(bars, broker, clock)
        if decided < 1 + self.strategy.warmup:
            return
        clock.end = decided + 1
        self.strategy.next()
        self.report.bars_decided += 1
        if not broker.pending:
            return
        before = len(broker.executions)
        broker.execute(forming)
        for execution in broker.executions[before:]:
            await self._send(execution)
        await sync_fills(self.journal, self.venue, self.options.symbol)

    async def _send(self, execution: Execution) -> None:
        from quantflow_async.live.orders import OrderRequest

        request = OrderRequest(
            symbol=self.options.symbol,
            side=execution.side,
            quantity=Decimal(execution.quantity),
            type="market",
            metadata={"bar_time": execution.time.isoformat(), "expected_price": execution.price},
        )
        order = await send_order(self.journal, self.venue, request)
        self.report.orders_sent += 1
        if order.status == "rejected":
            self.report.orders_rejected += 1
            self.broker = None  # the venue's account is not what the mirror thought: rebuild

    async def _mirror(self, so_far: BarsSoFar) -> Broker:
        """The broker mirroring the venue's account, rebuilt whenever the two disagree."""
        bars = so_far.bars
        if self.broker is not None:
            self.broker.bars = bars
            position = self._journal_position()
            if position[0] == self.broker.position_size:
                return self.broker
            log.warning(
                "the venue holds %s %s where the mirror expected %s: rebuilding the mirror",
                position[0],
                self.base,
                self.broker.position_size,
            )
        broker = Broker(
            bars, symbol=self.options.symbol, cash=1.0, commission=self.options.commission
        )
        await self._sync_to_venue(broker, so_far.closed)
        self.broker = broker
        return broker

    async def _sync_to_venue(self, broker: Broker, bar: int) -> None:
        balances = await self.venue.fetch_balance()
        quote = balances.get(self.quote)
        size, entry = self._journal_position()
        cash = float(quote.total) if quote is not None else 0.0
        broker.restore(cash=cash + size * entry, size=size, entry_price=entry, bar=bar)

    def _journal_position(self) -> tuple[int, float]:
        """The journal's net position in whole units and its average entry price."""
        position = self.journal.position(self.options.symbol)
        if position is None or not position.quantity:
            return 0, 0.0
        quantity = position.quantity
        if quantity != quantity.to_integral_value():
            raise InvalidValue(
                "position",
                f"{self.options.symbol} holds {quantity}, not whole units: the backtest "
                "broker the runner mirrors trades whole units only",
            )
        return int(quantity), float(position.average_price or 0)


def _check_number(name: str, value: float, *, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidValue(name, f"must be a number in [{low}, {high}], got {value!r}")
