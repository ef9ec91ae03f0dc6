"""An order's intent: committed in a transaction of its own before the order is sent, so the
venue is only ever told of an order the journal holds."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.errors import InvalidValue, OrderEventRefused
from quantflow_async.live.journal_entries import EventRows
from quantflow_async.live.journal_memory import KnownOrders, Tracked
from quantflow_async.live.journal_refusals import Refusals
from quantflow_async.live.orders import Change, Order, OrderRequest, OrderState
from quantflow_async.store.journal_fence import LeaseFence
from quantflow_async.store.order_journal import insert_intended


@dataclass(slots=True)
class Intents:
    """Records intents for a journal: `count` is how many it committed."""

    engine: AsyncEngine
    rows: EventRows
    known: KnownOrders
    refusals: Refusals
    fence: Callable[[], LeaseFence | None]
    count: int = 0

    async def intend(self, request: OrderRequest, client_id_prefix: str) -> Order:
        """The order of `request`, committed as intended when this returns; its client order
        id is the request's, or a new one that begins with `client_id_prefix`."""
        if not isinstance(request, OrderRequest):
            raise InvalidValue("request", f"expected OrderRequest, got {type(request).__name__}")
        cid = request.client_order_id or f"{client_id_prefix}{uuid.uuid4().hex}"[:36]
        now = datetime.now(UTC)
        values = self.rows.new_order(request, cid, now)
        taken = OrderEventRefused(cid, "intent", f"client_order_id {cid!r} is already used")
        if self.known.get(cid) is not None:
            await self.refusals.store(None, Change("intent"), taken)
        event = self.rows.event(
            "intent", None, now, status_after="intended", quantity=request.quantity,
            price=request.limit_price,
        )  # fmt: skip
        try:
            order_id = await insert_intended(
                self.engine, values, event, row_error=lambda exc: taken, fence=self.fence()
            )
        except OrderEventRefused:
            await self.refusals.store(None, Change("intent"), taken)
        self.count += 1
        order = Order(id=order_id, **values)
        self.known.remember(Tracked(order, OrderState(cid, "intended", order.quantity)))
        return order
