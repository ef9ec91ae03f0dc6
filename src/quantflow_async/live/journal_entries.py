"""The rows an accepted or refused order event writes, made once when the event is recorded.

Each row is a tuple of driver values (store/order_journal.py's *_COLUMNS, DriverForm), taken
by the batch's statements as it is: every event row has every column, so a batch is one
executemany per table and no value is converted again on the way.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from quantflow_async.errors import InvalidValue
from quantflow_async.live.orders import Change, Order, OrderRequest, Position
from quantflow_async.live.venue import AssetBalance, VenueTrade
from quantflow_async.store.order_journal import DriverForm, DriverRow, json_text
from quantflow_async.validation import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    to_decimal,
    to_label,
    to_utc,
)


class EventRows:
    """Row makers for one journal's (strategy, venue), in its backend's driver form."""

    def __init__(self, strategy_id: int, venue: str, form: DriverForm) -> None:
        self.strategy_id = strategy_id
        self.venue = venue
        self.form = form
        # A key of our own for events without a venue id: unique per journal by the prefix,
        # within it by the counter (a uuid per event cost more than the rest of its key).
        self._local_prefix = f"{venue}:local:{uuid.uuid4().hex}-"
        self._local_count = itertools.count(1)

    def event(
        self,
        kind: str,
        order_id: int | None,
        now: datetime,
        *,
        venue_event_id: str | None = None,
        status_after: str | None = None,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        fee: Decimal | None = None,
        fee_asset: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> DriverRow:
        """An order_events row (EVENT_COLUMNS)."""
        form = self.form
        decimal = form.decimal
        if venue_event_id is None:
            key = f"{self._local_prefix}{next(self._local_count)}"
        else:
            key = f"{self.venue}:{venue_event_id}"
        return (
            order_id,
            self.strategy_id,
            self.venue,
            key,
            kind,
            venue_event_id,
            status_after,
            None if quantity is None else decimal(quantity),
            None if price is None else decimal(price),
            None if fee is None else decimal(fee),
            fee_asset,
            reason,
            json_text(details),
            None if occurred_at is None else form.instant(occurred_at),
            form.instant(now),
        )

    def refused(
        self,
        order: Order | None,
        change: Change,
        reason: str,
        now: datetime,
        client_order_id: str | None = None,
    ) -> DriverRow:
        """A refused event: always a key of our own, so that a refused venue fact does not
        take the key a later, acceptable delivery of it needs. `client_order_id` names an
        order the journal does not know."""
        details = {
            "attempted": change.kind,
            **{
                name: str(value)
                for name, value in (
                    ("status", change.status),
                    ("quantity", change.quantity),
                    ("price", change.price),
                    ("venue_order_id", change.venue_order_id),
                    ("venue_event_id", change.venue_event_id),
                    ("client_order_id", client_order_id if order is None else None),
                )
                if value is not None
            },
        }
        return self.event(
            "refused",
            None if order is None else order.id,
            now,
            status_after=None if order is None else order.status,
            reason=reason,
            details=details,
        )

    def new_order(
        self, request: OrderRequest, client_order_id: str, now: datetime
    ) -> dict[str, Any]:
        """The orders row of an intent, as the record's values (stored through SQLAlchemy)."""
        return {
            "strategy_id": self.strategy_id,
            "backtest_id": None,
            "venue": self.venue,
            "client_order_id": client_order_id,
            "venue_order_id": None,
            "symbol": request.symbol,
            "side": request.side,
            "type": request.type,
            "quantity": request.quantity,
            "limit_price": request.limit_price,
            "stop_price": request.stop_price,
            "time_in_force": request.time_in_force,
            "status": "intended",
            "filled_quantity": Decimal(0),
            "average_price": None,
            "metadata": None if request.metadata is None else dict(request.metadata),
            "created_at": now,
            "updated_at": now,
        }

    def trade(self, order: Order, trade: VenueTrade, realized: Decimal, status: str) -> DriverRow:
        """A trades row (TRADE_COLUMNS)."""
        form = self.form
        decimal = form.decimal
        metadata = {
            "client_order_id": order.client_order_id,
            "venue_order_id": trade.venue_order_id,
            "fee_asset": trade.fee_asset,
        }
        return (
            self.strategy_id,
            None,
            order.symbol,
            order.side,
            order.type,
            decimal(trade.quantity),
            decimal(trade.price),
            decimal(trade.fee),
            form.instant(trade.executed_at),
            "filled" if status == "filled" else "partially_filled",
            json_text(metadata),
            decimal(realized),
            f"{self.venue}:{trade.trade_id}",
            order.id,
        )

    def position(self, position: Position) -> DriverRow:
        """A positions row (POSITION_COLUMNS)."""
        decimal = self.form.decimal
        average = position.average_price
        return (
            position.strategy_id,
            position.venue,
            position.symbol,
            decimal(position.quantity),
            None if average is None else decimal(average),
            decimal(position.realized_pnl),
            decimal(position.fees),
            self.form.instant(position.updated_at),
        )

    def cursor(self, stream: str, last_id: str, now: datetime) -> DriverRow:
        """A journal_cursors row (CURSOR_COLUMNS)."""
        return (self.strategy_id, self.venue, stream, last_id, self.form.instant(now))

    def balances(
        self, balances: Mapping[str, AssetBalance], taken_at: datetime
    ) -> tuple[DriverRow, ...]:
        """balance_snapshots rows (BALANCE_COLUMNS), by asset."""
        decimal = self.form.decimal
        at = self.form.instant(taken_at)
        return tuple(
            (self.venue, asset, decimal(balance.free), decimal(balance.locked), at)
            for asset, balance in sorted(balances.items())
        )


def checked_trade(trade: object) -> VenueTrade:
    """`trade` with every field checked as the journal stores it, or InvalidValue naming it."""
    if not isinstance(trade, VenueTrade):
        raise InvalidValue("trade", f"expected VenueTrade, got {type(trade).__name__}")
    executed_at = trade.executed_at
    if not isinstance(executed_at, datetime) or executed_at.tzinfo is not UTC:
        # (the venue adapters give UTC instants: those are checked, not made again)
        executed_at = to_utc(executed_at, "trade.executed_at")
    elif not EARLIEST_INSTANT <= executed_at <= LATEST_INSTANT:
        to_utc(executed_at, "trade.executed_at")  # raises, naming the bound
    return VenueTrade(
        to_label(trade.trade_id, "trade.trade_id"),
        to_label(trade.venue_order_id, "trade.venue_order_id"),
        trade.symbol,
        trade.side,
        to_decimal(trade.quantity, "trade.quantity"),
        to_decimal(trade.price, "trade.price"),
        to_decimal(trade.fee, "trade.fee"),
        trade.fee_asset,
        executed_at,
    )
