"""ccxt's own `binance` class against the paper exchange: every unified call a bot uses.

The exchange runs in the test's event loop on a free port with a clock the test moves, so
which bar is forming (and so every fill price) is decided by the test, not by timing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.support.paper import ManualClock, bar_time_ms, ccxt_binance, paper_exchange, write_bars

SYMBOL = "BTC/USDT"
BARS = [
    (100.0, 101.5, 99.25, 101.0),
    (101.0, 102.0, 100.5, 101.75),
    (101.75, 103.0, 98.5, 99.0),  # dips to 98.5: a buy limit at 99 fills here at 99
    (99.0, 106.0, 99.0, 105.5),  # rises to 106: a buy stop at 104 triggers here
    (105.5, 105.75, 104.0, 104.5),
]


@dataclass
class Venue:
    client: Any
    clock: ManualClock


@pytest.fixture
async def venue(tmp_path: Path) -> AsyncIterator[Venue]:
    clock = ManualClock(bar_seconds=1.0)
    data = write_bars(tmp_path / "bars.csv", BARS)
    async with paper_exchange(tmp_path, data, clock=clock, commission="0.001") as server:
        async with ccxt_binance(server.url) as client:
            yield Venue(client, clock)


async def test_load_markets_gives_one_spot_market_with_the_data_tick(venue: Venue) -> None:
    market = venue.client.market(SYMBOL)
    assert (market["id"], market["base"], market["quote"]) == ("BTCUSDT", "BTC", "USDT")
    assert market["spot"] and market["active"]
    assert market["precision"]["price"] == 0.01  # the data has two decimals


async def test_market_buy_fills_at_the_forming_bars_open(venue: Venue) -> None:
    venue.clock.to_bar(1)
    order = await venue.client.create_order(
        SYMBOL, "market", "buy", 2, params={"clientOrderId": "m-1"}
    )
    assert order["status"] == "closed"
    assert order["clientOrderId"] == "m-1"
    assert (order["filled"], order["average"], order["cost"]) == (2.0, 101.0, 202.0)
    assert order["timestamp"] == bar_time_ms(1)
    trades = await venue.client.fetch_my_trades(SYMBOL)
    assert [
        (t["order"], t["side"], t["price"], t["amount"], t["takerOrMaker"]) for t in trades
    ] == [(order["id"], "buy", 101.0, 2.0, "taker")]
    assert trades[0]["fee"] == {"cost": 0.202, "currency": "USDT"}


async def test_limit_buy_rests_then_fills_when_a_bar_trades_through_it(venue: Venue) -> None:
    order = await venue.client.create_order(
        SYMBOL, "limit", "buy", 1, 99.0, params={"clientOrderId": "l-1"}
    )
    assert order["status"] == "open"
    assert [o["id"] for o in await venue.client.fetch_open_orders(SYMBOL)] == [order["id"]]
    venue.clock.to_bar(3)  # bars 0..2 closed; bar 2's low 98.5 reached the limit
    filled = await venue.client.fetch_order(order["id"], SYMBOL)
    assert (filled["status"], filled["average"]) == ("closed", 99.0)
    by_client_id = await venue.client.fetch_order(None, SYMBOL, params={"clientOrderId": "l-1"})
    assert by_client_id["id"] == order["id"]
    trades = await venue.client.fetch_my_trades(SYMBOL)
    assert (trades[-1]["timestamp"], trades[-1]["takerOrMaker"]) == (bar_time_ms(2), "maker")


async def test_stop_loss_limit_triggers_and_fills_at_the_stop(venue: Venue) -> None:
    order = await venue.client.create_order(
        SYMBOL, "limit", "buy", 1, 104.5, params={"clientOrderId": "s-1", "triggerPrice": 104.0}
    )
    assert order["info"]["type"] == "STOP_LOSS_LIMIT"
    assert order["triggerPrice"] == 104.0
    venue.clock.to_bar(4)
    filled = await venue.client.fetch_order(order["id"], SYMBOL)
    assert (filled["status"], filled["average"]) == ("closed", 104.0)


async def test_cancel_order_cancels_a_resting_order(venue: Venue) -> None:
    order = await venue.client.create_order(
        SYMBOL, "limit", "sell", 1, 110.0, params={"clientOrderId": "c-1"}
    )
    cancelled = await venue.client.cancel_order(order["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    assert cancelled["info"]["origClientOrderId"] == "c-1"
    assert await venue.client.fetch_open_orders(SYMBOL) == []
    with pytest.raises(ccxt.OrderNotFound):
        await venue.client.cancel_order(order["id"], SYMBOL)


async def test_fetch_order_of_an_unknown_id_is_order_not_found(venue: Venue) -> None:
    with pytest.raises(ccxt.OrderNotFound):
        await venue.client.fetch_order("999", SYMBOL)


async def test_duplicate_client_order_id_is_invalid_order(venue: Venue) -> None:
    await venue.client.create_order(SYMBOL, "market", "buy", 1, params={"clientOrderId": "d-1"})
    with pytest.raises(ccxt.InvalidOrder):
        await venue.client.create_order(SYMBOL, "market", "buy", 1, params={"clientOrderId": "d-1"})


async def test_an_order_the_cash_cannot_pay_for_is_insufficient_funds(venue: Venue) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        await venue.client.create_order(
            SYMBOL, "market", "buy", 100, params={"clientOrderId": "big"}
        )


async def test_fetch_balance_shows_the_quote_cash_and_the_bought_base(venue: Venue) -> None:
    await venue.client.create_order(SYMBOL, "market", "buy", 3, params={"clientOrderId": "b-1"})
    balance = await venue.client.fetch_balance()
    assert balance["BTC"]["free"] == 3.0
    assert balance["USDT"]["free"] == pytest.approx(10_000 - 300 - 0.3)


async def test_fetch_ohlcv_gives_closed_bars_and_the_forming_ones_open(venue: Venue) -> None:
    venue.clock.to_bar(2)
    candles = await venue.client.fetch_ohlcv(SYMBOL, "1m")
    assert [c[0] for c in candles] == [bar_time_ms(k) for k in range(3)]
    assert candles[0][1:5] == list(BARS[0])
    assert candles[2][1:6] == [BARS[2][0]] * 4 + [0.0]


async def test_fetch_orders_lists_every_order_oldest_first(venue: Venue) -> None:
    first = await venue.client.create_order(
        SYMBOL, "market", "buy", 1, params={"clientOrderId": "o-1"}
    )
    second = await venue.client.create_order(
        SYMBOL, "limit", "buy", 1, 50.0, params={"clientOrderId": "o-2"}
    )
    orders = await venue.client.fetch_orders(SYMBOL)
    assert [o["id"] for o in orders] == [first["id"], second["id"]]


async def test_ccxt_signatures_pass_the_exchanges_checks_and_a_wrong_secret_fails(
    tmp_path: Path,
) -> None:
    data = write_bars(tmp_path / "bars.csv", BARS)
    keys = {"api_key": "k-1", "api_secret": "s-1"}
    async with paper_exchange(tmp_path, data, bar_seconds=60.0, **keys) as server:
        async with ccxt_binance(server.url, api_key="k-1", secret="s-1") as client:
            order = await client.create_order(
                SYMBOL, "market", "buy", 1, params={"clientOrderId": "signed"}
            )  # a POST: the signature covers the form body
            assert order["status"] == "closed"
            assert (await client.fetch_order(order["id"], SYMBOL))["clientOrderId"] == "signed"
        async with ccxt_binance(server.url, api_key="k-1", secret="wrong") as client:
            with pytest.raises(ccxt.AuthenticationError):
                await client.fetch_balance()


async def test_a_partially_filled_order_reads_as_open_with_its_fills(tmp_path: Path) -> None:
    clock = ManualClock(bar_seconds=1.0)
    data = write_bars(tmp_path / "bars.csv", BARS, volume=4.0)  # F = 0.25: 1 per bar
    async with paper_exchange(tmp_path, data, clock=clock, max_volume_share="0.25") as server:
        async with ccxt_binance(server.url) as client:
            order = await client.create_order(
                SYMBOL, "limit", "buy", 2.5, 99.0, params={"clientOrderId": "p-1"}
            )
            clock.to_bar(3)  # bar 2 (low 98.5) filled 1 of 2.5
            partial = await client.fetch_order(order["id"], SYMBOL)
            assert (partial["status"], partial["filled"], partial["remaining"]) == (
                "open", 1.0, 1.5,
            )  # fmt: skip
            assert partial["info"]["status"] == "PARTIALLY_FILLED"
            assert [o["id"] for o in await client.fetch_open_orders(SYMBOL)] == [order["id"]]
            cancelled = await client.cancel_order(order["id"], SYMBOL)
            assert (cancelled["status"], cancelled["filled"]) == ("canceled", 1.0)
            trades = await client.fetch_my_trades(SYMBOL)
            assert [(t["order"], t["amount"], t["price"]) for t in trades] == [
                (order["id"], 1.0, 99.0)
            ]
