"""The rows an accepted or refused order event writes, made once when the event is recorded.

The journal's batch statements take these dictionaries as they are (store/order_journal.py);
every event row has every column, so a batch is one executemany.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantflow_async.errors import InvalidValue
from quantflow_async.live.orders import Change, Order, OrderRequest, Position
from quantflow_async.live.venue import AssetBalance, VenueTrade
from quantflow_async.validation import to_decimal, to_label, to_utc


class EventRows:
    """Row makers for one journal's (strategy, venue)."""

    def __init__(self, strategy_id: int, venue: str) -> None:
        self.strategy_id = strategy_id
        self.venue = venue

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
    ) -> dict[str, Any]:
        local = venue_event_id is None
        key = (
            f"{self.venue}:local:{uuid.uuid4().hex}" if local else f"{self.venue}:{venue_event_id}"
        )
        return {
            "order_id": order_id,
            "strategy_id": self.strategy_id,
            "venue": self.venue,
            "event_key": key,
            "kind": kind,
            "venue_event_id": venue_event_id,
            "status_after": status_after,
            "quantity": quantity,
            "price": price,
            "fee": fee,
            "fee_asset": fee_asset,
            "reason": reason,
            "details": None if details is None else dict(details),
            "occurred_at": occurred_at,
            "recorded_at": now,
        }

    def refused(
        self, order: Order | None, change: Change, reason: str, now: datetime, **attempt: Any
    ) -> dict[str, Any]:
        """A refused event: always a key of our own, so that a refused venue fact does not
        take the key a later, acceptable delivery of it needs."""
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
                    *attempt.items(),
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

    def trade(
        self, order: Order, trade: VenueTrade, realized: Decimal, status: str
    ) -> dict[str, Any]:
        return {
            "strategy_id": self.strategy_id,
            "backtest_id": None,
            "symbol": order.symbol,
            "side": order.side,
            "type": order.type,
            "quantity": trade.quantity,
            "price": trade.price,
            "fee": trade.fee,
            "executed_at": trade.executed_at,
            "status": "filled" if status == "filled" else "partially_filled",
            "metadata": {
                "client_order_id": order.client_order_id,
                "venue_order_id": trade.venue_order_id,
                "fee_asset": trade.fee_asset,
            },
            "pnl": realized,
            "external_id": f"{self.venue}:{trade.trade_id}",
            "order_id": order.id,
        }

    def position(self, position: Position) -> dict[str, Any]:
        return {
            "strategy_id": position.strategy_id,
            "venue": position.venue,
            "symbol": position.symbol,
            "quantity": position.quantity,
            "average_price": position.average_price,
            "realized_pnl": position.realized_pnl,
            "fees": position.fees,
            "updated_at": position.updated_at,
        }

    def cursor(self, stream: str, last_id: str, now: datetime) -> dict[str, Any]:
        return {
            "strategy_id": self.strategy_id,
            "venue": self.venue,
            "stream": stream,
            "last_id": last_id,
            "updated_at": now,
        }

    def balances(
        self, balances: Mapping[str, AssetBalance], taken_at: datetime
    ) -> tuple[dict[str, Any], ...]:
        return tuple(
            {
                "venue": self.venue,
                "asset": asset,
                "free": balance.free,
                "locked": balance.locked,
                "taken_at": taken_at,
            }
            for asset, balance in sorted(balances.items())
        )


def checked_trade(trade: object) -> VenueTrade:
    """`trade` with every field checked as the journal stores it, or InvalidValue naming it."""
    if not isinstance(trade, VenueTrade):
        raise InvalidValue("trade", f"expected VenueTrade, got {type(trade).__name__}")
    return replace(
        trade,
        trade_id=to_label(trade.trade_id, "trade.trade_id"),
        venue_order_id=to_label(trade.venue_order_id, "trade.venue_order_id"),
        quantity=to_decimal(trade.quantity, "trade.quantity"),
        price=to_decimal(trade.price, "trade.price"),
        fee=to_decimal(trade.fee, "trade.fee"),
        executed_at=to_utc(trade.executed_at, "trade.executed_at"),
    )
