"""The paper exchange over real HTTP: Binance's shapes, the broker's fills, auth, bad requests,
and a SIGKILL of the exchange process that loses nothing it answered.

In-process tests move a `ManualClock`, so which bar forms is the test's choice; the subprocess
tests run on the wall clock with short bars.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.paper import (
    KEY,
    SECRET,
    ManualClock,
    PaperHttp,
    bar_time_ms,
    limit_order,
    market_order,
    paper_exchange,
    paper_http,
    paper_process,
    serve_command,
    write_bars,
)

BARS = [
    (100.0, 101.5, 99.25, 101.0),
    (101.0, 102.0, 100.5, 101.75),
    (101.75, 103.0, 98.5, 99.0),
    (99.0, 106.0, 97.0, 105.5),
    (107.0, 108.0, 104.0, 104.5),  # opens above 106: a sell limit at 106 fills at the open
    (104.5, 105.0, 103.0, 104.0),
]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[PaperHttp]:
    async with paper_http(tmp_path, BARS, commission="0.001") as made:
        yield made


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[PaperHttp]:
    async with paper_http(tmp_path, BARS, api_key=KEY, api_secret=SECRET) as made:
        yield made


# -- public endpoints ---------------------------------------------------------------------


async def test_ping_and_time(client: PaperHttp) -> None:
    assert await client.call("GET", "/api/v3/ping", sign=False) == (200, {})
    status, answer = await client.call("GET", "/api/v3/time", sign=False)
    assert status == 200 and abs(answer["serverTime"] - time.time() * 1000) < 5000


async def test_exchange_info_describes_one_trading_spot_symbol(client: PaperHttp) -> None:
    _, info = await client.call("GET", "/api/v3/exchangeInfo", sign=False)
    (symbol,) = info["symbols"]
    assert (symbol["symbol"], symbol["status"]) == ("BTCUSDT", "TRADING")
    assert (symbol["baseAsset"], symbol["quoteAsset"]) == ("BTC", "USDT")
    assert symbol["permissionSets"] == [["SPOT"]]
    filters = {f["filterType"]: f for f in symbol["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00000001"
    assert "NOTIONAL" in filters
    assert {"LIMIT", "MARKET", "STOP_LOSS_LIMIT"} <= set(symbol["orderTypes"])


async def test_klines_are_the_closed_bars_and_the_forming_bars_open(client: PaperHttp) -> None:
    client.clock.to_bar(2)
    status, klines = await client.call(
        "GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h"}, sign=False
    )
    assert status == 200
    assert [k[0] for k in klines] == [bar_time_ms(k) for k in range(3)]
    assert klines[0][1:6] == ["100.0", "101.5", "99.25", "101.0", "10.00000000"]
    assert klines[0][6] == bar_time_ms(1) - 1
    assert klines[2][1:6] == ["101.75"] * 4 + ["0.00000000"]


async def test_klines_honour_start_time_and_limit(client: PaperHttp) -> None:
    client.clock.to_bar(5)
    params = {"symbol": "BTCUSDT", "interval": "1m", "startTime": bar_time_ms(1), "limit": 2}
    _, klines = await client.call("GET", "/api/v3/klines", params, sign=False)
    assert [k[0] for k in klines] == [bar_time_ms(1), bar_time_ms(2)]


# -- execution rules ----------------------------------------------------------------------


async def test_market_order_fills_at_once_at_the_forming_bars_open(client: PaperHttp) -> None:
    client.clock.to_bar(1)
    status, order = await client.order(**market_order("BUY", "2", "m-1"), newOrderRespType="FULL")
    assert status == 200
    assert (order["status"], order["executedQty"], order["cummulativeQuoteQty"]) == (
        "FILLED", "2.00000000", "202.00000000",
    )  # fmt: skip
    assert order["transactTime"] == bar_time_ms(1)
    assert order["fills"] == [
        {"price": "101.0", "qty": "2.00000000", "commission": "0.20200000",
         "commissionAsset": "USDT", "tradeId": 1},
    ]  # fmt: skip
    assert await client.balances() == {"BTC": "2.00000000", "USDT": "9797.79800000"}


async def test_buy_limit_rests_and_fills_at_the_limit_when_a_later_bar_dips_to_it(
    client: PaperHttp,
) -> None:
    _, order = await client.order(**limit_order("BUY", "1", "99", "l-1"))
    assert order["status"] == "NEW" and order["fills"] == []
    client.clock.to_bar(2)  # bars 0 and 1 never went below 99.25
    _, still = await client.call("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 1})
    assert still["status"] == "NEW"
    client.clock.to_bar(3)  # bar 2's low is 98.5
    _, trades = await client.call("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
    assert [(t["price"], t["time"], t["isMaker"], t["isBuyer"]) for t in trades] == [
        ("99", bar_time_ms(2), True, True)
    ]


async def test_sell_limit_fills_at_the_open_when_a_bar_gaps_past_it(client: PaperHttp) -> None:
    await client.order(**market_order("BUY", "1", "m-1"))
    await client.order(**limit_order("SELL", "1", "106", "l-1"))
    client.clock.to_bar(5)  # bar 3 reaches 106 high... at max(open 99, 106) = 106
    _, trades = await client.call("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
    assert [(t["price"], t["time"]) for t in trades][1] == ("106", bar_time_ms(3))


async def test_limit_that_crosses_the_open_on_arrival_fills_at_the_open(client: PaperHttp) -> None:
    _, order = await client.order(**limit_order("BUY", "1", "100.5", "l-1"))
    assert (order["status"], order["fills"][0]["price"]) == ("FILLED", "100.0")


async def test_stop_loss_limit_sell_triggers_when_the_low_reaches_the_stop(
    client: PaperHttp,
) -> None:
    await client.order(**market_order("BUY", "1", "m-1"))
    params = limit_order("SELL", "1", "97.5", "s-1", stopPrice="98", type="STOP_LOSS_LIMIT")
    status, order = await client.order(**params)
    assert status == 200 and order["type"] == "STOP_LOSS_LIMIT" and order["status"] == "NEW"
    client.clock.to_bar(2)
    _, pending = await client.call("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 2})
    assert (pending["status"], pending["isWorking"]) == ("NEW", False)
    client.clock.to_bar(3)  # bar 2: low 98.5 does not reach 98 yet
    client.clock.to_bar(4)  # bar 3: low 97 triggers at min(open 99, 98) = 98; limit 97.5 allows it
    _, done = await client.call("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 2})
    assert (done["status"], done["cummulativeQuoteQty"], done["updateTime"]) == (
        "FILLED", "98.00000000", bar_time_ms(3),
    )  # fmt: skip


async def test_a_sell_without_base_opens_a_short(client: PaperHttp) -> None:
    status, order = await client.order(**market_order("SELL", "1", "short"))
    assert (status, order["status"]) == (200, "FILLED")
    assert (await client.balances())["BTC"] == "-1.00000000"


async def test_an_order_the_account_cannot_pay_for_is_refused_and_changes_nothing(
    client: PaperHttp,
) -> None:
    status, answer = await client.order(**market_order("BUY", "99.95", "big"))  # 9995 + 9.995 fee
    assert (status, answer) == (
        400, {"code": -2010, "msg": "Account has insufficient balance for requested action."},
    )  # fmt: skip
    assert await client.all_orders() == []
    assert await client.balances() == {"BTC": "0.00000000", "USDT": "10000.00000000"}


async def test_a_client_order_id_used_before_is_a_duplicate(client: PaperHttp) -> None:
    await client.order(**limit_order("BUY", "1", "50", "same"))
    await client.call("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "same"})
    status, answer = await client.order(**market_order("BUY", "1", "same"))
    assert (status, answer) == (400, {"code": -2010, "msg": "Duplicate order sent."})
    assert len(await client.all_orders()) == 1


async def test_unknown_orders(client: PaperHttp) -> None:
    query = {"symbol": "BTCUSDT", "orderId": 42}
    assert await client.call("GET", "/api/v3/order", query) == (
        400, {"code": -2013, "msg": "Order does not exist."},
    )  # fmt: skip
    assert await client.call("DELETE", "/api/v3/order", query) == (
        400, {"code": -2011, "msg": "Unknown order sent."},
    )  # fmt: skip


async def test_cancel_answers_with_the_orders_client_id_as_orig(client: PaperHttp) -> None:
    await client.order(**limit_order("BUY", "1", "50", "keep"))
    params = {"symbol": "BTCUSDT", "origClientOrderId": "keep", "newClientOrderId": "cxl"}
    status, answer = await client.call("DELETE", "/api/v3/order", params)
    assert status == 200
    assert (answer["status"], answer["origClientOrderId"], answer["clientOrderId"]) == (
        "CANCELED", "keep", "cxl",
    )  # fmt: skip
    _, open_orders = await client.call("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert open_orders == []


async def test_account_shape(client: PaperHttp) -> None:
    _, account = await client.call("GET", "/api/v3/account")
    assert account["commissionRates"] == {
        "maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000",
    }  # fmt: skip
    assert account["accountType"] == "SPOT" and account["canTrade"] is True
    assert {b["asset"] for b in account["balances"]} == {"BTC", "USDT"}


async def account_uid(tmp_path: Path, state: Path) -> Any:
    async with paper_http(tmp_path, BARS, state=state) as client:
        _, account = await client.call("GET", "/api/v3/account")
        return account["uid"]


async def test_the_account_uid_survives_a_restart_on_the_same_state_file(tmp_path: Path) -> None:
    uid = await account_uid(tmp_path, tmp_path / "a.sqlite")
    assert isinstance(uid, int) and 0 < uid < 2**53  # exact in any JSON reader
    assert await account_uid(tmp_path, tmp_path / "a.sqlite") == uid


async def test_another_state_file_is_another_account_uid(tmp_path: Path) -> None:
    first = await account_uid(tmp_path, tmp_path / "a.sqlite")
    assert await account_uid(tmp_path, tmp_path / "b.sqlite") != first


async def test_a_state_file_made_without_a_uid_gets_one_and_keeps_it(tmp_path: Path) -> None:
    state = tmp_path / "old.sqlite"
    await account_uid(tmp_path, state)
    db = sqlite3.connect(state)
    try:
        with db:
            db.execute("DELETE FROM meta WHERE key = 'uid'")
    finally:
        db.close()
    uid = await account_uid(tmp_path, state)
    assert isinstance(uid, int) and uid > 0
    assert await account_uid(tmp_path, state) == uid


async def test_after_the_last_bar_the_market_is_closed(client: PaperHttp) -> None:
    await client.order(**limit_order("BUY", "1", "50", "rest"))
    client.clock.to_bar(len(BARS))
    status, answer = await client.order(**market_order("BUY", "1", "late"))
    assert (status, answer) == (400, {"code": -2010, "msg": "Market is closed."})
    _, info = await client.call("GET", "/api/v3/exchangeInfo", sign=False)
    assert info["symbols"][0]["status"] == "BREAK"
    _, klines = await client.call(
        "GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"}, sign=False
    )
    assert len(klines) == len(BARS) and klines[-1][4] == "104.0"
    assert [o["clientOrderId"] for o in await client.all_orders()] == ["rest"]


# -- authentication -------------------------------------------------------------------------


async def test_a_correctly_signed_request_is_accepted(keyed: PaperHttp) -> None:
    status, order = await keyed.order(**market_order("BUY", "1", "ok"))
    assert (status, order["status"]) == (200, "FILLED")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"secret": "wrong"}, 400, -1022),
        ({"key": ""}, 401, -2014),
        ({"key": "other"}, 401, -2015),
    ],
)
async def test_badly_signed_requests_are_refused_and_change_nothing(
    keyed: PaperHttp, change: dict[str, str], status: int, code: int
) -> None:
    bad = PaperHttp(
        keyed.session, keyed.url, keyed.clock, keyed.server, **{**vars_of(keyed), **change}
    )
    got_status, answer = await bad.order(**market_order("BUY", "1", "bad"))
    assert (got_status, answer["code"]) == (status, code)
    assert await keyed.all_orders() == []


async def test_an_old_timestamp_is_refused(keyed: PaperHttp) -> None:
    old = int(time.time() * 1000) - 6000
    status, answer = await keyed.order(**market_order("BUY", "1", "old"), timestamp=old)
    assert (status, answer) == (
        400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
    )  # fmt: skip
    status, _ = await keyed.order(
        **market_order("BUY", "1", "old"), timestamp=old, recvWindow=10000
    )
    assert status == 200


async def test_an_unsigned_request_is_refused(keyed: PaperHttp) -> None:
    status, answer = await keyed.call("GET", "/api/v3/account", {"timestamp": 1}, sign=False)
    assert status == 400 and answer["code"] in (-1021, -1102)
    status, answer = await keyed.call(
        "GET", "/api/v3/account", {"timestamp": int(time.time() * 1000)}, sign=False
    )
    assert (status, answer["code"]) == (400, -1102)


def vars_of(client: PaperHttp) -> dict[str, str]:
    return {"key": client.key, "secret": client.secret}


# -- malformed requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"side": "BUY", "type": "MARKET", "quantity": "abc"}, -1100),
        ({"side": "BUY", "type": "MARKET"}, -1102),
        ({"type": "MARKET", "quantity": "1"}, -1102),
        ({"side": "UP", "type": "MARKET", "quantity": "1"}, -1117),
        ({"side": "BUY", "type": "ICEBERG", "quantity": "1"}, -1116),
        (
            {
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "1",
                "price": "99.999",
                "timeInForce": "GTC",
            },
            -1013,
        ),
        ({"side": "BUY", "type": "MARKET", "quantity": "0.000000001"}, -1013),
        ({"side": "BUY", "type": "MARKET", "quantity": "1", "newClientOrderId": "a b"}, -1100),
    ],
)
async def test_malformed_orders_get_binance_errors_and_change_nothing(
    client: PaperHttp, params: dict[str, str], code: int
) -> None:
    status, answer = await client.order(**params)
    assert (status, answer["code"]) == (400, code)
    assert isinstance(answer["msg"], str)
    assert await client.all_orders() == []


async def test_an_oversized_body_is_refused_and_changes_nothing(client: PaperHttp) -> None:
    status, answer = await client.order(**market_order("BUY", "1", "x"), padding="p" * 70_000)
    assert (status, answer["code"]) == (400, -1101)
    assert await client.all_orders() == []


async def test_an_oversized_query_is_refused(client: PaperHttp) -> None:
    status, answer = await client.call("GET", "/api/v3/openOrders", {"pad": "p" * 5000})
    assert (status, answer["code"]) == (400, -1101)


async def test_a_repeated_parameter_is_refused(client: PaperHttp) -> None:
    response = await client.session.get(client.url + "/api/v3/openOrders?symbol=BTCUSDT&symbol=X")
    async with response:
        assert response.status == 400
        assert (await response.json())["code"] == -1101


async def test_unknown_symbol_and_unknown_path(client: PaperHttp) -> None:
    status, answer = await client.order(symbol="ETHUSDT", **market_order("BUY", "1", "e"))
    assert (status, answer) == (400, {"code": -1121, "msg": "Invalid symbol."})
    status, _ = await client.call("GET", "/api/v3/nothing", sign=False)
    assert status == 404


# -- the process --------------------------------------------------------------------------


def test_kill_9_and_restart_keeps_orders_trades_balances_and_the_replay(tmp_path: Path) -> None:

    data = write_bars(tmp_path / "bars.csv", BARS * 20)
    state = tmp_path / "state.sqlite"
    extra = ["--bar-seconds", "0.05"]

    async def snapshot(url: str, place: bool) -> dict[str, Any]:
        clock = ManualClock(1.0)
        async with aiohttp.ClientSession() as session:
            client = PaperHttp(session, url, clock, None)  # type: ignore[arg-type]
            if place:
                await client.order(**market_order("BUY", "1", "before-kill"))
                await client.order(**limit_order("BUY", "1", "1", "resting"))
            _, trades = await client.call("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
            _, klines = await client.call(
                "GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1000},
                sign=False,
            )  # fmt: skip
            return {
                "orders": await client.all_orders(),
                "trades": trades,
                "balances": await client.balances(),
                "bars": len(klines),
            }

    with paper_process(data, state, extra=extra) as first:
        before = asyncio.run(snapshot(first.url, place=True))
        first.kill()
    time.sleep(0.2)  # market time passes while the exchange is down
    with paper_process(data, state, extra=extra) as second:
        after = asyncio.run(snapshot(second.url, place=False))
        assert second.stop(signal.SIGTERM) == 0
    assert [o["clientOrderId"] for o in after["orders"]] == ["before-kill", "resting"]
    assert after["orders"][1]["status"] == "NEW"
    assert after["trades"] == before["trades"] and len(after["trades"]) == 1
    assert after["balances"] == before["balances"]
    assert after["bars"] >= before["bars"] + 3  # the replay went on, downtime included


def test_sigint_stops_the_exchange_with_status_0(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "bars.csv", BARS)
    with paper_process(data, tmp_path / "s.sqlite") as child:
        assert child.line.startswith("paper exchange BTCUSDT on http://127.0.0.1:")
        assert child.stop(signal.SIGINT) == 0


def test_a_bad_bars_file_is_one_line_and_nothing_listens(tmp_path: Path) -> None:
    data = tmp_path / "bars.csv"
    data.write_text("time,open,high,low,close\n2024-01-01,1,2,0.5,x\n")
    result = subprocess.run(
        serve_command(data, tmp_path / "s.sqlite"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "not a number" in result.stderr


async def test_resting_orders_fill_as_bars_close_without_any_request(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "bars.csv", BARS)
    state = tmp_path / "state.sqlite"
    # Bars of half a second: the order must reach the market before its last bar has closed,
    # however slowly a loaded machine makes the client and its request.
    async with paper_exchange(tmp_path, data, state=state, bar_seconds=0.5) as server:
        async with aiohttp.ClientSession() as session:
            client = PaperHttp(session, server.url, ManualClock(1.0), server)
            await client.order(**limit_order("BUY", "1", "99", "waits"))
        status = None
        deadline = time.monotonic() + 10
        while status != "FILLED" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # bar 2 (low 98.5) closes meanwhile; nobody asks
            db = sqlite3.connect(state)
            try:
                (status,) = db.execute("SELECT status FROM orders").fetchone()
            finally:
                db.close()
    assert status == "FILLED"
