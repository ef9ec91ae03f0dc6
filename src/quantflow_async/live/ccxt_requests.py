"""What each call of `CcxtVenue` asks a ccxt exchange, in Binance spot's terms: an order as
sent, the raw order and klines (whose strings keep the venue's exact numbers), a page of our
trades."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import ccxt.async_support as ccxt_async

from quantflow_async.errors import InvalidValue
from quantflow_async.live.ccxt_precision import CCXT_ORDER_TYPES
from quantflow_async.live.venue import NewOrder

TRADES_PAGE: Final = 1000
"""Binance's largest myTrades page."""


def trades_page(
    exchange: Any, symbol: str, since_ms: int | None, from_id: int | None
) -> Callable[[], Awaitable[Any]]:
    """One myTrades page: from `from_id` when given (Binance ignores startTime then)."""
    params = {} if from_id is None else {"fromId": from_id}
    since = since_ms if from_id is None else None
    return lambda: exchange.fetch_my_trades(symbol, since, TRADES_PAGE, params)


async def create_raw_order(exchange: Any, order: NewOrder) -> Any:
    params: dict[str, Any] = {**order.extra, "clientOrderId": order.client_order_id}
    if order.stop_price is not None:
        params["triggerPrice"] = order.stop_price
    if order.time_in_force is not None:
        params["timeInForce"] = order.time_in_force
    order_type = CCXT_ORDER_TYPES[order.type].lower()
    return await exchange.create_order(
        order.symbol, order_type, order.side, order.quantity, order.limit_price, params
    )


async def fetch_raw_order(
    exchange: Any, symbol: str, venue_order_id: str | None, client_order_id: str | None
) -> Any:
    params = order_params(venue_order_id, client_order_id)
    try:
        return await exchange.fetch_order(venue_order_id or "", symbol, params)
    except ccxt_async.OrderNotFound:
        return None


async def raw_klines(
    exchange: Any, symbol: str, timeframe: str, since_ms: int | None, limit: int | None
) -> Any:
    await exchange.load_markets()
    request: dict[str, Any] = {
        "symbol": exchange.market(symbol)["id"],
        "interval": timeframe,
    }
    if since_ms is not None:
        request["startTime"] = since_ms
    if limit is not None:
        request["limit"] = limit
    return await exchange.publicGetKlines(request)


def order_params(venue_order_id: str | None, client_order_id: str | None) -> dict[str, str]:
    if venue_order_id is None and client_order_id is None:
        raise InvalidValue("venue_order_id", "give venue_order_id or client_order_id")
    return {} if client_order_id is None else {"clientOrderId": client_order_id}
