"""Partial fills on the paper exchange: with --max-volume-share F < 1 a resting order fills at
most F x each closed bar's volume, one trade per bar, PARTIALLY_FILLED until it is FILLED.

Every test moves a `ManualClock`, so which bars have closed is the test's choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.paper import PaperHttp, bar_time_ms, limit_order, market_order, paper_http

# a buy limit at 99 is reached by bars 1, 2 and 3; F = 0.25 lets it take 2, 1.5, then the rest
BARS = [
    (100.0, 101.0, 99.5, 100.5),
    (100.5, 101.0, 98.5, 99.0),
    (99.0, 99.5, 97.0, 98.0),
    (98.0, 99.5, 97.5, 99.0),
    (99.0, 100.0, 98.0, 99.5),
    (99.5, 100.0, 98.0, 99.0),
]
VOLUMES = [8.0, 8.0, 6.0, 40.0, 8.0, 8.0]
QUARTER = "0.25"  # --max-volume-share in these tests


async def order(client: PaperHttp, order_id: int = 1) -> dict[str, Any]:
    _, answer = await client.call(
        "GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order_id}
    )
    return dict(answer)


async def trades(client: PaperHttp) -> list[tuple[Any, ...]]:
    _, answer = await client.call("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
    return [
        (t["id"], t["orderId"], t["price"], t["qty"], t["commission"], t["time"], t["isMaker"])
        for t in answer
    ]


def progress(answer: dict[str, Any]) -> tuple[str, str, str]:
    return answer["status"], answer["executedQty"], answer["cummulativeQuoteQty"]


async def test_a_limit_order_fills_over_three_bars_through_partially_filled(
    tmp_path: Path,
) -> None:
    async with paper_http(
        tmp_path, BARS, volume=VOLUMES, commission="0.001", max_volume_share=QUARTER
    ) as client:
        _, placed = await client.order(**limit_order("BUY", "5", "99", "slow"))
        assert (placed["status"], placed["fills"]) == ("NEW", [])
        client.clock.to_bar(2)  # bar 1 closed: volume 8 -> 2 of 5 at min(open 100.5, 99)
        assert progress(await order(client)) == ("PARTIALLY_FILLED", "2.00000000", "198.00000000")
        client.clock.to_bar(3)  # bar 2: volume 6 -> 1.5 more at 99
        assert progress(await order(client)) == ("PARTIALLY_FILLED", "3.50000000", "346.50000000")
        _, still_open = await client.call("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
        assert [o["clientOrderId"] for o in still_open] == ["slow"]
        client.clock.to_bar(4)  # bar 3: volume 40 -> the last 1.5 at its open 98
        done = await order(client)
        assert progress(done) == ("FILLED", "5.00000000", "493.50000000")
        assert done["updateTime"] == bar_time_ms(3)
        assert await trades(client) == [
            (1, 1, "99", "2.00000000", "0.19800000", bar_time_ms(1), True),
            (2, 1, "99.0", "1.50000000", "0.14850000", bar_time_ms(2), True),
            (3, 1, "98.0", "1.50000000", "0.14700000", bar_time_ms(3), True),
        ]
        # 10000 - 493.5 - 0.4935 in fees
        assert await client.balances() == {"BTC": "5.00000000", "USDT": "9506.00650000"}


async def test_cancelling_a_partially_filled_order_keeps_its_fills(tmp_path: Path) -> None:
    async with paper_http(tmp_path, BARS, volume=VOLUMES, max_volume_share=QUARTER) as client:
        await client.order(**limit_order("BUY", "5", "99", "half"))
        client.clock.to_bar(2)
        params = {"symbol": "BTCUSDT", "origClientOrderId": "half"}
        status, cancelled = await client.call("DELETE", "/api/v3/order", params)
        assert status == 200
        assert progress(cancelled) == ("CANCELED", "2.00000000", "198.00000000")
        client.clock.to_bar(5)  # bars 2..4 would have filled the rest
        assert progress(await order(client)) == ("CANCELED", "2.00000000", "198.00000000")
        assert [t[3] for t in await trades(client)] == ["2.00000000"]
        assert await client.balances() == {"BTC": "2.00000000", "USDT": "9802.00000000"}


async def test_a_portion_the_account_can_no_longer_pay_for_expires_the_rest(
    tmp_path: Path,
) -> None:
    async with paper_http(
        tmp_path, BARS, volume=VOLUMES, cash="1000", max_volume_share=QUARTER
    ) as client:
        await client.order(**limit_order("BUY", "5", "99", "greedy"))  # 495 of 1000: accepted
        client.clock.to_bar(2)  # 2 filled for 198: 802 left
        status, _ = await client.order(**market_order("BUY", "7", "spend"))  # 693 at open 99
        assert status == 200
        client.clock.to_bar(3)  # bar 2's portion, 1.5 x 99 = 148.5, exceeds the 109 left
        assert progress(await order(client)) == ("EXPIRED", "2.00000000", "198.00000000")
        assert await client.balances() == {"BTC": "9.00000000", "USDT": "109.00000000"}
        client.clock.to_bar(5)
        assert len(await trades(client)) == 2


async def test_a_portion_is_rounded_down_to_the_lot_step_and_zero_fills_nothing(
    tmp_path: Path,
) -> None:
    tiny = [8.0, 3e-08, 9e-08, 8.0, 8.0, 8.0]  # x 0.25: 0.0000000075 and 0.0000000225
    async with paper_http(tmp_path, BARS, volume=tiny, max_volume_share=QUARTER) as client:
        await client.order(**limit_order("BUY", "1", "99", "steps"))
        client.clock.to_bar(2)
        assert progress(await order(client)) == ("NEW", "0.00000000", "0.00000000")
        client.clock.to_bar(3)
        assert progress(await order(client)) == ("PARTIALLY_FILLED", "0.00000002", "0.00000198")
        client.clock.to_bar(4)
        assert progress(await order(client))[:2] == ("FILLED", "1.00000000")


async def test_orders_share_a_bars_volume_oldest_first(tmp_path: Path) -> None:
    async with paper_http(tmp_path, BARS, volume=VOLUMES, max_volume_share=QUARTER) as client:
        await client.order(**limit_order("BUY", "1.5", "99", "first"))
        await client.order(**limit_order("BUY", "1.5", "99", "second"))
        client.clock.to_bar(2)  # bar 1 allows 2 in all: 1.5 to the first, 0.5 to the second
        assert progress(await order(client, 1))[:2] == ("FILLED", "1.50000000")
        assert progress(await order(client, 2))[:2] == ("PARTIALLY_FILLED", "0.50000000")


async def test_market_orders_fill_whole_whatever_the_volume(tmp_path: Path) -> None:
    async with paper_http(tmp_path, BARS, volume=VOLUMES, max_volume_share=QUARTER) as client:
        client.clock.to_bar(1)
        _, filled = await client.order(**market_order("BUY", "50", "big"))
        assert progress(filled) == ("FILLED", "50.00000000", "5025.00000000")
        assert len(filled["fills"]) == 1


async def test_a_triggered_stop_limit_fills_in_portions_taker_then_maker(
    tmp_path: Path,
) -> None:
    async with paper_http(tmp_path, BARS, volume=VOLUMES, max_volume_share=QUARTER) as client:
        stop = limit_order("SELL", "3", "98", "stop", type="STOP_LOSS_LIMIT", stopPrice="98.5")
        await client.order(**stop)
        client.clock.to_bar(2)  # bar 1: low 98.5 triggers at 98.5, within the limit: 2 of 3
        assert progress(await order(client)) == ("PARTIALLY_FILLED", "2.00000000", "197.00000000")
        client.clock.to_bar(3)  # bar 2 rests as a sell limit at 98: max(open 99, 98) = 99
        assert progress(await order(client))[:2] == ("FILLED", "3.00000000")
        assert [(t[2], t[3], t[6]) for t in await trades(client)] == [
            ("98.5", "2.00000000", False),
            ("99.0", "1.00000000", True),
        ]


async def test_without_a_volume_column_orders_fill_whole(tmp_path: Path) -> None:
    async with paper_http(
        tmp_path, BARS, volume=None, cash="100000", max_volume_share=QUARTER
    ) as client:
        await client.order(**limit_order("BUY", "500", "99", "all"))
        client.clock.to_bar(2)
        assert progress(await order(client)) == ("FILLED", "500.00000000", "49500.00000000")


async def test_by_default_an_order_larger_than_the_bars_volume_fills_whole(
    tmp_path: Path,
) -> None:
    async with paper_http(tmp_path, BARS, volume=VOLUMES) as client:
        await client.order(**limit_order("BUY", "20", "99", "whole"))
        client.clock.to_bar(2)  # bar 1's volume is 8
        assert progress(await order(client)) == ("FILLED", "20.00000000", "1980.00000000")
        assert len(await trades(client)) == 1


async def test_a_partially_filled_order_goes_on_filling_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    async with paper_http(
        tmp_path, BARS, volume=VOLUMES, state=state, max_volume_share=QUARTER
    ) as client:
        await client.order(**limit_order("BUY", "5", "99", "survives"))
        client.clock.to_bar(2)
        assert progress(await order(client))[0] == "PARTIALLY_FILLED"
        clock = client.clock
    async with paper_http(
        tmp_path, BARS, volume=VOLUMES, state=state, clock=clock, max_volume_share=QUARTER
    ) as client:
        client.clock.to_bar(4)
        assert progress(await order(client)) == ("FILLED", "5.00000000", "493.50000000")
        assert [t[0] for t in await trades(client)] == [1, 2, 3]
