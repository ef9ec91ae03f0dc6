"""The paper exchange's fees: commission x notional, rounded half-even to eight decimals of the
quote asset as Binance reports a commission, and taken from the balance exactly as reported.

Unrounded, a price and a quantity of eight decimals at a rate of 0.001 make a fee of nineteen
decimals, which no venue reports and the journal refuses to store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from quantflow_async import Database
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.order_flow import send_order, sync_fills
from quantflow_async.live.orders import OrderRequest
from quantflow_async.live.paper.matching import settle
from tests.support.paper import (
    ManualClock,
    PaperHttp,
    market_order,
    paper_exchange,
    paper_http,
    write_bars,
)

# A coin worth a thousandth of a cent: prices with eight decimals, as Binance lists such pairs.
CHEAP_BARS = [
    (0.00001307, 0.00001311, 0.00001306, 0.00001309),
    (0.00001309, 0.00001317, 0.00001309, 0.00001313),
]
QUANTITY = "123.45678901"
# 123.45678901 x 0.00001307 = 0.0016135802323607; x 0.001 = 0.0000016135802323607
NOTIONAL = Decimal("0.0016135802323607")
FEE = Decimal("0.00000161")
EIGHT_PLACES = Decimal("0.00000001")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[PaperHttp]:
    async with paper_http(tmp_path, CHEAP_BARS, commission="0.001") as made:
        yield made


@pytest.mark.parametrize(
    ("price", "fee"),
    [
        ("1.00000001", "0.50000000"),  # 0.500000005: the tie goes to the even last digit
        ("1.00000003", "0.50000002"),  # 0.500000015: and up when that one is even
        ("1.00000004", "0.50000002"),  # 0.50000002 exactly
    ],
)
def test_a_fee_is_rounded_half_even_to_the_fee_step(price: str, fee: str) -> None:
    paid = settle(
        "BUY",
        Decimal(1),
        Decimal(price),
        Decimal("0.5"),
        quote=Decimal(10),
        base=Decimal(0),
        fee_step=EIGHT_PLACES,
    )
    assert paid is not None
    assert paid.fee == Decimal(fee)
    assert paid.quote == Decimal(10) - Decimal(price) - Decimal(fee)


async def test_a_fill_reports_its_fee_to_eight_decimals_and_pays_exactly_that(
    client: PaperHttp,
) -> None:
    status, order = await client.order(
        **market_order("BUY", QUANTITY, "m-1"), newOrderRespType="FULL"
    )
    assert status == 200
    assert [fill["commission"] for fill in order["fills"]] == [str(FEE)]
    _, (trade,) = await client.call("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
    assert (trade["quoteQty"], trade["commission"]) == (str(NOTIONAL), str(FEE))
    balances = await client.balances()
    assert Decimal(balances["USDT"]) == Decimal(10_000) - NOTIONAL - FEE
    assert balances["BTC"] == QUANTITY


async def test_exchange_info_gives_the_precision_fees_are_rounded_to(client: PaperHttp) -> None:
    _, info = await client.call("GET", "/api/v3/exchangeInfo", sign=False)
    (symbol,) = info["symbols"]
    assert (symbol["quoteCommissionPrecision"], symbol["baseCommissionPrecision"]) == (8, 8)


async def test_a_fill_at_eight_decimal_prices_is_journaled_with_its_fee(
    db: Database, strategy_id: int, tmp_path: Path
) -> None:
    clock = ManualClock(bar_seconds=60.0)
    data = write_bars(tmp_path / "bars.csv", CHEAP_BARS)
    request = OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal(QUANTITY))
    async with (
        paper_exchange(tmp_path, data, clock=clock, commission="0.001") as server,
        CcxtVenue.connect(server.url, VenueCredentials.placeholder(), name="paper") as venue,
    ):
        async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
            order = await send_order(journal, venue, request)
            assert await sync_fills(journal, venue, "BTCUSDT") == 1
        async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
            restored = await journal.restore()
            await journal.reconcile(venue, symbols=["BTCUSDT"])

    (journaled,) = await db.orders.list(strategy_id=strategy_id)
    assert (journaled.client_order_id, journaled.status) == (order.client_order_id, "filled")
    position = restored.positions["BTCUSDT"]
    assert (position.quantity, position.fees) == (Decimal(QUANTITY), FEE)
