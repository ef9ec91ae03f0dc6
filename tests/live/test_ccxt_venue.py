"""CcxtVenue against a Binance-shaped server: records with exact Decimals, mapped statuses, None
for an unknown order, MalformedVenueAnswer for an answer that cannot be read, and secrets that
never show in credentials, errors or logs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from quantflow_async.errors import InvalidValue, MalformedVenueAnswer, VenueRejected
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials, scrub
from quantflow_async.live.venue import NewOrder
from quantflow_async.live.venue_retry import RetryPolicy
from tests.support.fault_proxy import FaultProxy

KEY = "kEy0123456789abcdefKEYTAIL"
SECRET = "sEcReT0123456789abcdefghijklmnop"
FAST = RetryPolicy(
    attempts=3, first_delay=0.01, max_delay=0.05, deadline=5.0, rate_limit_delay=0.01
)

EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 1_700_000_000_000,
    "rateLimits": [],
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "permissions": ["SPOT"],
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01",
                    "maxPrice": "1000000",
                    "tickSize": "0.01",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001",
                    "maxQty": "9000",
                    "stepSize": "0.00001",
                },
            ],
        }
    ],
}


def _stub_order(cid: str, **overrides: Any) -> dict[str, Any]:
    order = {
        "symbol": "BTCUSDT",
        "orderId": 7,
        "clientOrderId": cid,
        "transactTime": 1_700_000_000_000,
        "price": "0.00000000",
        "origQty": "0.10000000",
        "executedQty": "0.10000000",
        "cummulativeQuoteQty": "4212.34500000",
        "status": "FILLED",
        "timeInForce": "GTC",
        "type": "MARKET",
        "side": "BUY",
    }
    order.update(overrides)
    return order


@pytest.fixture
async def stub() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A tiny Binance-shaped server whose order answer the test sets in `answers["order"]`."""
    answers: dict[str, Any] = {}

    async def exchange_info(request: web.Request) -> web.Response:
        return web.json_response(EXCHANGE_INFO)

    async def order(request: web.Request) -> web.Response:
        if request.headers.get("X-MBX-APIKEY") != KEY:
            return web.json_response({"code": -2015, "msg": "Invalid API-key."}, status=401)
        if "order" not in answers:
            return web.json_response({"code": -2013, "msg": "Order does not exist."}, status=400)
        return web.json_response(answers["order"])

    app = web.Application()
    app.router.add_get("/api/v3/exchangeInfo", exchange_info)
    app.router.add_route("*", "/api/v3/order", order)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", answers
    finally:
        await runner.cleanup()


async def test_stub_market_order_reads_exact_decimals(stub: tuple[str, dict[str, Any]]) -> None:
    url, answers = stub
    answers["order"] = _stub_order("c-1")
    async with CcxtVenue.connect(url, VenueCredentials(KEY, SECRET), policy=FAST) as venue:
        order = await venue.fetch_order("BTC/USDT", client_order_id="c-1")
    assert order is not None
    assert order.status == "filled"
    assert order.filled_quantity == Decimal("0.1")
    assert order.average_price == Decimal("42123.45")
    assert order.client_order_id == "c-1"


async def test_unknown_order_is_none(stub: tuple[str, dict[str, Any]]) -> None:
    url, _ = stub
    async with CcxtVenue.connect(url, VenueCredentials(KEY, SECRET), policy=FAST) as venue:
        assert await venue.fetch_order("BTC/USDT", client_order_id="nope") is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"orderId": None}, "id"),
        ({"executedQty": "lots"}, "filled"),
        ({"status": "SOMETHING_NEW"}, "status"),
        ({"type": "LIMIT", "price": "1e"}, "price"),
    ],
)
async def test_malformed_order_answer_names_the_field(
    stub: tuple[str, dict[str, Any]], overrides: dict[str, Any], field: str
) -> None:
    url, answers = stub
    answers["order"] = _stub_order("c-1", **overrides)
    async with CcxtVenue.connect(url, VenueCredentials(KEY, SECRET), policy=FAST) as venue:
        with pytest.raises(MalformedVenueAnswer) as caught:
            await venue.fetch_order("BTC/USDT", client_order_id="c-1")
    assert caught.value.field == field


async def test_proxy_sanity(stub: tuple[str, dict[str, Any]]) -> None:
    url, answers = stub
    answers["order"] = _stub_order("c-1")
    port = int(url.rsplit(":", 1)[1])
    async with FaultProxy(port, seed=3, rates={}) as proxy:
        async with CcxtVenue.connect(
            proxy.url, VenueCredentials(KEY, SECRET), policy=FAST
        ) as venue:
            order = await venue.create_order(
                NewOrder("c-1", "BTC/USDT", "buy", "market", Decimal("0.1"))
            )
    assert order.venue_order_id == "7"
