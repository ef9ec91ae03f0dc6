"""The rows an accepted or refused order event writes, made once when the event is recorded.

Each row is a tuple of driver values (store/order_journal.py's *_COLUMNS, DriverForm), taken
by the batch's statements as it is: every event row has every column, so a batch is one
executemany per table and no value is converted again on the way.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

from quantflow_async.errors import InvalidValue
from quantflow_async.live.journal_memory import Tracked
from quantflow_async.live.orders import Change, Order, OrderRequest, Position
from quantflow_async.live.venue import AssetBalance, VenueTrade
from quantflow_async.record_maker import record_maker
from quantflow_async.store.journal_batch import (
    DriverForm,
    DriverRow,
    JournalEntry,
    json_text,
)
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
        self._last_moment: datetime | None = None
        self._last_instant: Any = None

    def instant(self, moment: datetime) -> Any:
        """`moment` in the driver's form; the rows of one event share their `now`, made once."""
        if moment is not self._last_moment:
            self._last_moment, self._last_instant = moment, self.form.instant(moment)
        return self._last_instant

    def order_change(self, order: Tracked) -> DriverRow:
        """The driver row of the batch's order update that brings the row to `order`'s state."""
        decimal, state = self.form.decimal, order.state
        average = state.average_price
        return (
            state.status,
            decimal(state.filled_quantity),
            None if average is None else decimal(average),
            state.venue_order_id,
            self.instant(order.updated_at),
            order.placed.id,
        )

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
            self.instant(now),
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
            self.instant(position.updated_at),
        )

    def cursor(self, stream: str, last_id: str, now: datetime) -> DriverRow:
        """A journal_cursors row (CURSOR_COLUMNS)."""
        return (self.strategy_id, self.venue, stream, last_id, self.form.instant(now))

    def fill(
        self,
        tracked: Tracked,
        trade: VenueTrade,
        position: Position,
        realized: Decimal,
        *,
        reason: str | None,
        now: datetime,
    ) -> JournalEntry:
        """What one fill writes: its event, the order's new row (`tracked`, after the fill),
        its trade and the position it moved. The trade's values are written once for both."""
        decimal, strategy_id, venue = self.form.decimal, self.strategy_id, self.venue
        order, status = tracked.placed, tracked.state.status
        quantity, price, fee = decimal(trade.quantity), decimal(trade.price), decimal(trade.fee)
        executed_at = self.form.instant(trade.executed_at)
        event = (
            order.id, strategy_id, venue, f"{venue}:{trade.trade_id}", "fill", trade.trade_id,
            status, quantity, price, fee, trade.fee_asset, reason, None, executed_at,
            self.instant(now),
        )  # fmt: skip
        metadata = (
            f'{{"client_order_id":{_json_string(order.client_order_id)},'
            f'"venue_order_id":{_json_string(trade.venue_order_id)},'
            f'"fee_asset":{_json_string(trade.fee_asset)}}}'
        )
        trade_row = (
            strategy_id, None, order.symbol, order.side, order.type, quantity, price, fee,
            executed_at, "filled" if status == "filled" else "partially_filled",
            metadata, decimal(realized), f"{venue}:{trade.trade_id}", order.id,
        )  # fmt: skip
        return JournalEntry(event, self.order_change(tracked), trade_row, self.position(position))

    def balances(
        self, balances: Mapping[str, AssetBalance], taken_at: datetime
    ) -> tuple[DriverRow, ...]:
        """balance_snapshots rows (BALANCE_COLUMNS), by asset; InvalidValue naming a bad one."""
        for asset, balance in balances.items():
            to_label(asset, "asset", 32)
            to_decimal(balance.free, f"balances[{asset!r}].free")
            to_decimal(balance.locked, f"balances[{asset!r}].locked")
        decimal = self.form.decimal
        at = self.form.instant(taken_at)
        return tuple(
            (self.venue, asset, decimal(balance.free), decimal(balance.locked), at)
            for asset, balance in sorted(balances.items())
        )


def _json_string(text: str | None) -> str:
    return "null" if text is None else encode_basestring_ascii(text)


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
    return _make_venue_trade(
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


# Every fill is checked into a new one: see record_maker.
_make_venue_trade = record_maker(VenueTrade, [field.name for field in fields(VenueTrade)])
