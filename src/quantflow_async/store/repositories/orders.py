"""Orders, their events, positions and balances, as the order journal stored them: reads only.

Every write goes through `OrderJournal` (`db.journal(...)`), which keeps each order row the
fold of its events; this repository lets anyone look at the result.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Final

from sqlalchemy import func, select

from quantflow_async.errors import InvalidValue, NotFound
from quantflow_async.order_records import (
    ORDER_STATUSES,
    BalanceSnapshot,
    Order,
    OrderEvent,
    OrderStatus,
    Position,
)
from quantflow_async.store.order_journal import (
    balance_record,
    event_record,
    order_record,
    position_record,
)
from quantflow_async.store.repositories._common import Repository, fetch_all, fetch_one
from quantflow_async.store.schema import balance_snapshots, order_events, orders, positions
from quantflow_async.validation import to_choice, to_id, to_label

MAX_PAGE: Final = 100_000


def _statuses(value: OrderStatus | Iterable[OrderStatus]) -> list[str]:
    given = [value] if isinstance(value, str) else list(value)
    if not given:
        raise InvalidValue("status", "give at least one status")
    return [to_choice(status, "status", ORDER_STATUSES) for status in given]


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise InvalidValue("limit", f"must be an int from 1 to {MAX_PAGE}, got {value!r}")
    return value


class OrderRepository(Repository):
    """The journal's orders (by id order), their events, positions and balance snapshots."""

    async def list(
        self,
        *,
        strategy_id: int | None = None,
        venue: str | None = None,
        status: OrderStatus | Iterable[OrderStatus] | None = None,
        symbol: str | None = None,
        limit: int = 1000,
        after_id: int | None = None,
    ) -> builtins.list[Order]:
        """One page of orders, oldest first; pass the last id of a page as `after_id`."""
        query = select(orders).order_by(orders.c.id).limit(_limit(limit))
        if strategy_id is not None:
            query = query.where(orders.c.strategy_id == to_id(strategy_id, "strategy_id"))
        if venue is not None:
            query = query.where(orders.c.venue == to_label(venue, "venue", 64))
        if status is not None:
            query = query.where(orders.c.status.in_(_statuses(status)))
        if symbol is not None:
            query = query.where(orders.c.symbol == to_label(symbol, "symbol", 64))
        if after_id is not None:
            query = query.where(orders.c.id > to_id(after_id, "after_id"))
        rows = await fetch_all(self._engine, query, "listing orders")
        return [order_record(row) for row in rows]

    async def get(self, order_id: int) -> Order:
        return order_record(await self._row_by_id(orders, order_id, "order"))

    async def get_by_client_order_id(self, client_order_id: str) -> Order:
        client_order_id = to_label(client_order_id, "client_order_id", 64)
        query = select(orders).where(orders.c.client_order_id == client_order_id)
        row = await fetch_one(self._engine, query, f"reading order {client_order_id!r}")
        if row is None:
            raise NotFound("order", client_order_id, field="client_order_id")
        return order_record(row)

    async def events(self, order_id: int) -> builtins.list[OrderEvent]:
        """Every event of the order, in the order they were recorded (refused ones too)."""
        order_id = to_id(order_id, "order_id")
        query = (
            select(order_events)
            .where(order_events.c.order_id == order_id)
            .order_by(order_events.c.id)
        )
        rows = await fetch_all(self._engine, query, f"reading the events of order {order_id}")
        return [event_record(row) for row in rows]

    async def refused(
        self, *, strategy_id: int | None = None, limit: int = 1000
    ) -> builtins.list[OrderEvent]:
        """Refused events, newest first (those about unknown orders have no order_id)."""
        query = (
            select(order_events)
            .where(order_events.c.kind == "refused")
            .order_by(order_events.c.id.desc())
            .limit(_limit(limit))
        )
        if strategy_id is not None:
            query = query.where(order_events.c.strategy_id == to_id(strategy_id, "strategy_id"))
        rows = await fetch_all(self._engine, query, "reading refused order events")
        return [event_record(row) for row in rows]

    async def positions(
        self, *, strategy_id: int | None = None, venue: str | None = None
    ) -> builtins.list[Position]:
        query = select(positions).order_by(
            positions.c.strategy_id, positions.c.venue, positions.c.symbol
        )
        if strategy_id is not None:
            query = query.where(positions.c.strategy_id == to_id(strategy_id, "strategy_id"))
        if venue is not None:
            query = query.where(positions.c.venue == to_label(venue, "venue", 64))
        rows = await fetch_all(self._engine, query, "reading positions")
        return [position_record(row) for row in rows]

    async def balances(
        self, *, venue: str | None = None, latest_only: bool = True
    ) -> builtins.list[BalanceSnapshot]:
        """Balance snapshots by venue and asset, oldest first; only the latest of each asset
        unless `latest_only` is False."""
        table = balance_snapshots
        query = select(table).order_by(table.c.venue, table.c.asset, table.c.taken_at)
        if venue is not None:
            query = query.where(table.c.venue == to_label(venue, "venue", 64))
        if latest_only:
            latest = (
                select(table.c.venue, table.c.asset, func.max(table.c.taken_at).label("taken_at"))
                .group_by(table.c.venue, table.c.asset)
                .subquery()
            )
            query = query.join(
                latest,
                (latest.c.venue == table.c.venue)
                & (latest.c.asset == table.c.asset)
                & (latest.c.taken_at == table.c.taken_at),
            )
        rows = await fetch_all(self._engine, query, "reading balances")
        return [balance_record(row) for row in rows]
