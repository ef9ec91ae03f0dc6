"""Helpers of the journal tests: a trade of an order, and an order brought to a status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantflow_async.live.journal import OrderJournal
from quantflow_async.live.orders import Order, OrderRequest
from quantflow_async.live.venue import VenueTrade

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def trade(
    order: Order | str,
    trade_id: str,
    quantity: str,
    price: str = "100",
    *,
    fee: str = "0",
    side: str | None = None,
    symbol: str = "BTCUSDT",
) -> VenueTrade:
    venue_order_id = order if isinstance(order, str) else order.venue_order_id
    assert venue_order_id is not None
    return VenueTrade(
        trade_id=trade_id,
        venue_order_id=venue_order_id,
        symbol=symbol,
        side=side or ("buy" if isinstance(order, str) else order.side),  # type: ignore[arg-type]
        quantity=Decimal(quantity),
        price=Decimal(price),
        fee=Decimal(fee),
        fee_asset="USDT",
        executed_at=T0 + timedelta(seconds=int(trade_id) if trade_id.isdigit() else 0),
    )


async def open_order(
    journal: OrderJournal, quantity: str = "1", *, side: str = "buy", venue_id: str | None = None
) -> Order:
    """An order intended, submitted and acknowledged: open."""
    order = await journal.intend(
        OrderRequest(symbol="BTCUSDT", side=side, quantity=Decimal(quantity))  # type: ignore[arg-type]
    )
    await journal.submitted(order.client_order_id)
    await journal.acknowledged(order.client_order_id, venue_id or f"v-{order.id}")
    found = journal.order(order.client_order_id)
    assert found is not None
    return found
