"""CcxtVenue against a Binance-shaped server: records with exact Decimals, mapped statuses, None
for an unknown order, MalformedVenueAnswer for an answer that cannot be read, and secrets that
never show in credentials, errors or logs."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from quantflow_async.errors import InvalidValue, MalformedVenueAnswer, VenueRejected
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials, scrub
from quantflow_async.live.paper.config import PaperExchangeConfig
from quantflow_async.live.paper.server import PaperExchangeServer
from quantflow_async.live.venue import NewOrder
from quantflow_async.live.venue_retry import RetryPolicy
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.venues import SYMBOL, rising_bars

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


# -- against the real paper exchange -----------------------------------------------------


@pytest.fixture
async def paper(tmp_path: Path) -> AsyncIterator[PaperExchangeServer]:
    config = PaperExchangeConfig.of(
        data=rising_bars(tmp_path / "bars.csv"),
        symbol="BTCUSDT",
        state=tmp_path / "paper.sqlite3",
        bar_seconds=30.0,
        cash="100000",
        commission="0.001",
        api_key=KEY,
        api_secret=SECRET,
    )
    server = PaperExchangeServer.open(config)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


async def test_every_call_returns_exact_records_from_the_paper_exchange(
    paper: PaperExchangeServer,
) -> None:
    async with CcxtVenue.connect(paper.url, VenueCredentials(KEY, SECRET), policy=FAST) as venue:
        bought = await venue.create_order(
            NewOrder("buy-1", SYMBOL, "buy", "market", Decimal("0.123"))
        )
        resting = await venue.create_order(
            NewOrder("rest-1", SYMBOL, "buy", "limit", Decimal("0.5"), limit_price=Decimal("50.25"))
        )
        fetched = await venue.fetch_order(SYMBOL, client_order_id="buy-1")
        by_id = await venue.fetch_order(SYMBOL, venue_order_id=resting.venue_order_id)
        open_orders = await venue.fetch_open_orders(SYMBOL)
        cancelled = await venue.cancel_order(SYMBOL, client_order_id="rest-1")
        unknown = await venue.fetch_order(SYMBOL, client_order_id="never-sent")
        trades = await venue.fetch_my_trades(SYMBOL)
        after = await venue.fetch_my_trades(SYMBOL, after_trade_id=trades[-1].trade_id)
        balances = await venue.fetch_balance()
        bars = await venue.fetch_ohlcv(SYMBOL, "1d", limit=5)
    assert (bought.status, bought.type, bought.side) == ("filled", "market", "buy")
    assert bought.filled_quantity == bought.quantity == Decimal("0.123")
    assert bought.average_price == Decimal("100")  # the forming bar's open
    assert fetched == dataclasses.replace(
        bought, updated_at=fetched.updated_at if fetched else None
    )
    assert (resting.status, resting.limit_price, resting.filled_quantity) == (
        "open",
        Decimal("50.25"),
        Decimal(0),
    )
    assert by_id is not None and by_id.client_order_id == "rest-1"
    assert [o.client_order_id for o in open_orders] == ["rest-1"]
    assert (cancelled.status, cancelled.client_order_id) == ("cancelled", "rest-1")
    assert unknown is None
    assert len(trades) == 1 and after == []
    trade = trades[0]
    assert (trade.venue_order_id, trade.side, trade.quantity, trade.price) == (
        bought.venue_order_id,
        "buy",
        Decimal("0.123"),
        Decimal("100"),
    )
    assert trade.fee == Decimal("0.0123") and trade.fee_asset == "USDT"  # 0.1 % of 12.3
    assert balances["USDT"].total == Decimal("100000") - Decimal("12.3") - Decimal("0.0123")
    assert balances["BTC"].free == Decimal("0.123")
    assert all(isinstance(bar.open, Decimal) for bar in bars)
    assert bars[0].open == Decimal("100.00")


async def test_a_wrong_secret_is_refused_without_showing_it(
    paper: PaperExchangeServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrongSecretValue0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    async with CcxtVenue.connect(paper.url, VenueCredentials(KEY, wrong), policy=FAST) as venue:
        with pytest.raises(VenueRejected) as caught:
            await venue.fetch_balance()
    chain = [caught.value, caught.value.__cause__, caught.value.__context__]
    texts = [str(error) for error in chain if error is not None]
    texts += [record.getMessage() for record in caplog.records]
    for text in texts:
        assert KEY not in text and wrong not in text
        assert "signature=" not in text or "signature=***" in text
    assert any(record.name.startswith("ccxt") for record in caplog.records)


async def test_retries_are_logged_without_secrets(
    paper: PaperExchangeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="quantflow_async.live.ccxt_calls")
    async with FaultProxy(paper.port, seed=1, rates={Fault.HTTP_503: 0.5}) as proxy:
        async with CcxtVenue.connect(
            proxy.url, VenueCredentials(KEY, SECRET), policy=FAST
        ) as venue:
            for _ in range(5):
                await venue.fetch_balance()
    warnings_logged = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert proxy.faults > 0, proxy.injected
    assert warnings_logged, caplog.records
    for record in caplog.records:
        assert KEY not in record.getMessage() and SECRET not in record.getMessage()


def test_credentials_never_show_the_secret_or_the_key() -> None:
    credentials = VenueCredentials(KEY, SECRET)
    for text in (repr(credentials), str(credentials), f"{credentials}"):
        assert SECRET not in text and KEY not in text
        assert "TAIL" in text  # the key's last four characters, to tell keys apart
    assert KEY[-4:] == "TAIL"
    assert scrub(f"GET /x?a=1&signature=abc123&k={KEY}", (KEY, SECRET)) == (
        "GET /x?a=1&signature=***&k=***"
    )


def test_credentials_come_from_the_environment_or_an_owner_only_file(tmp_path: Path) -> None:
    env = {"QUANTFLOW_VENUE_API_KEY": KEY, "QUANTFLOW_VENUE_API_SECRET": SECRET}
    assert VenueCredentials.from_env(env) == VenueCredentials(KEY, SECRET)
    with pytest.raises(InvalidValue, match="QUANTFLOW_VENUE_API_SECRET"):
        VenueCredentials.from_env({"QUANTFLOW_VENUE_API_KEY": KEY})
    file = tmp_path / "keys.json"
    file.write_text(json.dumps({"api_key": KEY, "api_secret": SECRET}))
    file.chmod(0o600)
    assert VenueCredentials.from_file(file) == VenueCredentials(KEY, SECRET)
    file.chmod(0o644)
    with pytest.raises(InvalidValue, match="chmod 600") as caught:
        VenueCredentials.from_file(file)
    assert SECRET not in str(caught.value)
