"""The journal's memory of its orders: each order with its state-machine state, by client id
and by venue order id, loaded from the database the first time an event names it."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from decimal import Decimal

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.live.orders import WIDE, Order, OrderState
from quantflow_async.record_maker import record_maker
from quantflow_async.store.order_journal import OrderMemory, VenueIdHolders, load_order


class Tracked:
    """One order as the journal knows it now; changed only together with the queue.

    Recording an event moves `state` and makes no Order: `order` is made from `placed` (what
    an event never changes) and `state` when it is asked for.
    """

    __slots__ = ("placed", "state", "updated_at", "_order")

    def __init__(self, order: Order, state: OrderState) -> None:
        self.placed = order
        self.state = state
        self.updated_at = order.updated_at
        self._order: Order | None = order

    @property
    def order(self) -> Order:
        if self._order is None:
            p, s = self.placed, self.state
            self._order = _make_order(
                p.id, p.strategy_id, p.backtest_id, p.venue, p.client_order_id,
                s.venue_order_id, p.symbol, p.side, p.type, p.quantity, p.limit_price,
                p.stop_price, p.time_in_force, s.status, s.filled_quantity, s.average_price,
                p.metadata, p.created_at, self.updated_at,
            )  # fmt: skip
        return self._order

    def move(self, state: OrderState, now: datetime) -> None:
        self.state = state
        self.updated_at = now
        self._order = None


# Without a frozen dataclass's __init__: a third of the cost of making an Order.
_make_order = record_maker(Order, [field.name for field in fields(Order)])


def tracked(memory: OrderMemory) -> Tracked:
    """An order read back, with the exact notional of its fills and the venue facts seen."""
    order = memory.order
    notional = Decimal(0)
    for quantity, price in memory.fills:
        notional = WIDE.add(notional, WIDE.multiply(quantity, price))
    state = OrderState(
        order.client_order_id,
        order.status,
        order.quantity,
        order.filled_quantity,
        notional,
        order.venue_order_id,
        memory.seen,
    )
    return Tracked(order, state)


class KnownOrders:
    """Every order restored or touched by one journal of (strategy, venue)."""

    def __init__(self, engine: AsyncEngine, strategy_id: int, venue: str) -> None:
        self._engine = engine
        self._strategy_id = strategy_id
        self._venue = venue
        self._orders: dict[str, Tracked] = {}
        self._by_venue_id: dict[str, str] = {}
        self._loading = anyio.Lock()
        self._holders = VenueIdHolders(engine)

    def get(self, client_order_id: str) -> Tracked | None:
        return self._orders.get(client_order_id)

    def by_venue_id(self, venue_order_id: str) -> Tracked | None:
        cid = self._by_venue_id.get(venue_order_id)
        return None if cid is None else self._orders[cid]

    def owner_of(self, venue_order_id: str | None) -> str | None:
        return None if venue_order_id is None else self._by_venue_id.get(venue_order_id)

    def remember(self, entry: Tracked) -> Tracked:
        state = entry.state
        self._orders[state.client_order_id] = entry
        if state.venue_order_id is not None:
            self._by_venue_id[state.venue_order_id] = state.client_order_id
        return entry

    def forget_venue_id(self, venue_order_id: str) -> None:
        self._by_venue_id.pop(venue_order_id, None)

    async def find(self, client_order_id: str) -> Tracked | None:
        """From memory, else from the database; None if no order of ours has this id."""
        found = self._orders.get(client_order_id)
        if found is not None:
            return found
        async with self._loading:
            found = self._orders.get(client_order_id)
            if found is None:
                memory = await load_order(self._engine, client_order_id=client_order_id)
                if memory is not None and self._owns(memory.order):
                    found = self.remember(tracked(memory))
        return found

    async def find_by_venue_id(self, venue_order_id: str) -> Tracked | None:
        cid = self._by_venue_id.get(venue_order_id)
        if cid is not None:
            return self._orders[cid]
        key = (self._venue, venue_order_id)
        async with self._loading:
            cid = self._by_venue_id.get(venue_order_id)
            if cid is not None:
                return self._orders[cid]
            memory = await load_order(self._engine, venue_order_id=key)
            if memory is None or not self._owns(memory.order):
                return None
            return self._orders.get(memory.order.client_order_id) or self.remember(tracked(memory))

    async def venue_id_owner(self, venue_order_id: str | None) -> str | None:
        """The client order id of whichever order holds `venue_order_id` on this venue, of any
        strategy, in any session; None if none does."""
        if venue_order_id is None:
            return None
        owner = self._by_venue_id.get(venue_order_id)
        if owner is not None:
            return owner
        return await self._holders.holder(self._venue, venue_order_id)

    async def aclose(self) -> None:
        await self._holders.aclose()

    def _owns(self, order: Order) -> bool:
        return order.strategy_id == self._strategy_id and order.venue == self._venue
