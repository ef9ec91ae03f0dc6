"""Reconciliation after a restart: whatever happened at the venue while the bot was down ends up
in the journal once, in an order the state machine accepts, and nothing foreign is journaled.

Each test moves a `MemoryVenue` "while the bot was down", opens a new journal on the same
database, reconciles, and checks the journal against the exchange's own record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from quantflow_async import Database
from quantflow_async.errors import VenueUnavailable
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.journal import OrderJournal
from quantflow_async.live.orders import Order, OrderRequest
from quantflow_async.live.reconcile import ReconcileReport, reconcile, trades_stream
from quantflow_async.live.venue import NewOrder, OrderSide, VenueTrade
from tests.support.memory_venue import MemoryVenue
from tests.support.paper import ManualClock, paper_exchange, write_bars

START = {"BTC": Decimal(10), "ETH": Decimal(100), "USDT": Decimal(1_000_000)}


@pytest.fixture
def venue() -> MemoryVenue:
    return MemoryVenue(START)


@asynccontextmanager
async def journal_of(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> AsyncIterator[OrderJournal]:
    async with db.journal(strategy_id=strategy_id, venue=venue.name) as journal:
        yield journal


async def placed(
    journal: OrderJournal,
    venue: MemoryVenue,
    quantity: str = "2",
    *,
    side: OrderSide = "buy",
    symbol: str = "BTCUSDT",
    acknowledge: bool = True,
) -> Order:
    """An order journaled as intended and submitted, sent, and (by default) acknowledged."""
    order = await journal.intend(
        OrderRequest(
            symbol=symbol,
            side=side,
            quantity=Decimal(quantity),
            type="limit",
            limit_price=Decimal(100),
        )
    )
    await journal.submitted(order.client_order_id)
    answer = await venue.create_order(
        NewOrder(
            client_order_id=order.client_order_id,
            symbol=symbol,
            side=order.side,
            type="limit",
            quantity=order.quantity,
            limit_price=order.limit_price,
        )
    )
    if acknowledge:
        await journal.acknowledged(order.client_order_id, answer.venue_order_id)
    await journal.flush()
    return order


async def reconciled(
    db: Database, strategy_id: int, venue: MemoryVenue, *, symbols: tuple[str, ...] = ()
) -> ReconcileReport:
    """A restart: a new journal on the same database restores, then reconciles."""
    async with journal_of(db, strategy_id, venue) as journal:
        await journal.restore()
        return await reconcile(journal, venue, symbols=symbols)


async def assert_level(
    db: Database, strategy_id: int, venue: MemoryVenue, *, symbols: tuple[str, ...] = ("BTCUSDT",)
) -> None:
    """The journal's orders match the venue's (status, filled quantity, venue id), and each
    position is the venue's change of the base asset's balance, less trades not ours."""
    journaled = {o.client_order_id: o for o in await db.orders.list(strategy_id=strategy_id)}
    at_venue = {o.client_order_id: o for o in venue.orders}
    for cid, order in journaled.items():
        if cid not in at_venue:
            assert order.status in ("rejected", "unknown"), cid
            continue
        found = at_venue[cid]
        assert (order.status, order.filled_quantity, order.venue_order_id) == (
            found.status,
            found.filled_quantity,
            found.venue_order_id,
        )
    owner = {o.venue_order_id: o.client_order_id for o in venue.orders}
    held = {p.symbol: p.quantity for p in await db.orders.positions(strategy_id=strategy_id)}
    for symbol in symbols:
        base = venue.markets[symbol][0]
        not_ours = sum(
            (t.quantity if t.side == "buy" else -t.quantity)
            for t in venue.trades
            if t.symbol == symbol and owner.get(t.venue_order_id) not in journaled
        )
        assert held.get(symbol, Decimal(0)) == venue.balance(base) - START[base] - not_ours


async def test_an_intent_never_sent_is_rejected_as_never_sent(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        intent = await journal.intend(
            OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal(1))
        )
        submitted = await journal.intend(
            OrderRequest(symbol="BTCUSDT", side="sell", quantity=Decimal(1))
        )
        await journal.submitted(submitted.client_order_id, wait=True)

    report = await reconciled(db, strategy_id, venue)

    assert set(report.never_sent) == {intent.client_order_id, submitted.client_order_id}
    for cid in report.never_sent:
        order = await db.orders.get_by_client_order_id(cid)
        assert order.status == "rejected"
        events = await db.orders.events(order.id)
        assert (events[-1].kind, events[-1].reason) == ("rejected", "never_sent")
    await assert_level(db, strategy_id, venue)


async def test_a_fill_missed_while_down_is_recorded_once(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue)
    trade = venue.fill(venue.order_by_client_id(order.client_order_id).venue_order_id)

    first = await reconciled(db, strategy_id, venue)
    second = await reconciled(db, strategy_id, venue)

    assert first.fills_recorded == (trade.trade_id,)
    assert second.fills_recorded == second.duplicate_fills == ()
    assert not second.changed
    events = await db.orders.events(
        (await db.orders.get_by_client_order_id(order.client_order_id)).id
    )
    fills = [e for e in events if e.kind == "fill"]
    assert [(e.venue_event_id, e.reason) for e in fills] == [(trade.trade_id, "reconciled")]
    await assert_level(db, strategy_id, venue)


async def test_a_fill_delivered_again_is_a_counted_duplicate(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue)
        trade = venue.fill(venue.order_by_client_id(order.client_order_id).venue_order_id)
        assert await journal.filled(trade, wait=True)  # journaled, but the cursor never moved

    report = await reconciled(db, strategy_id, venue)

    assert report.duplicate_fills == (trade.trade_id,)
    assert report.fills_recorded == ()
    await assert_level(db, strategy_id, venue)


async def test_an_order_cancelled_while_down_is_cancelled(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue)
    venue.cancel(venue.order_by_client_id(order.client_order_id).venue_order_id)

    report = await reconciled(db, strategy_id, venue)

    assert report.status_changes == ((order.client_order_id, "open", "cancelled"),)
    await assert_level(db, strategy_id, venue)


async def test_an_order_partly_filled_then_expired_keeps_its_fills(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue, "3")
    venue_id = venue.order_by_client_id(order.client_order_id).venue_order_id
    venue.fill(venue_id, "1", price="99")
    venue.expire(venue_id)

    report = await reconciled(db, strategy_id, venue)

    assert len(report.fills_recorded) == 1
    assert report.status_changes == ((order.client_order_id, "partially_filled", "expired"),)
    await assert_level(db, strategy_id, venue)


class LaggingTrades(MemoryVenue):
    """A venue whose list of trades lags its orders' statuses while `lagging` is set."""

    lagging = False

    async def fetch_my_trades(
        self, symbol: str, *, since: datetime | None = None, after_trade_id: str | None = None
    ) -> Sequence[VenueTrade]:
        if self.lagging:
            return []
        return await super().fetch_my_trades(symbol, since=since, after_trade_id=after_trade_id)


async def test_a_fill_listed_after_its_order_was_cancelled_is_recorded(
    db: Database, strategy_id: int
) -> None:
    """The venue filled part of the order, then cancelled it, and listed the trade late."""
    venue = LaggingTrades(START)
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue, "3")
    venue_id = venue.order_by_client_id(order.client_order_id).venue_order_id
    venue.fill(venue_id, "1", price="99")
    venue.cancel(venue_id)
    venue.lagging = True
    first = await reconciled(db, strategy_id, venue, symbols=("BTCUSDT",))
    assert first.status_changes == ((order.client_order_id, "open", "cancelled"),)
    assert first.fills_recorded == ()

    venue.lagging = False
    second = await reconciled(db, strategy_id, venue, symbols=("BTCUSDT",))

    assert len(second.fills_recorded) == 1 and second.refused == ()
    stored = await db.orders.get(order.id)
    assert (stored.status, stored.filled_quantity) == ("cancelled", Decimal(1))
    await assert_level(db, strategy_id, venue)


async def test_partially_filled_then_filled_while_down(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue, "3")
    venue_id = venue.order_by_client_id(order.client_order_id).venue_order_id
    venue.fill(venue_id, "1", price="99")
    partly = await reconciled(db, strategy_id, venue)
    assert (await db.orders.get_by_client_order_id(order.client_order_id)).status == (
        "partially_filled"
    )
    await assert_level(db, strategy_id, venue)

    venue.fill(venue_id, price="102")
    filled = await reconciled(db, strategy_id, venue)

    assert len(partly.fills_recorded) == 1 and len(filled.fills_recorded) == 1
    journaled = await db.orders.get_by_client_order_id(order.client_order_id)
    assert journaled.status == "filled"
    assert journaled.average_price == Decimal(101)
    await assert_level(db, strategy_id, venue)


async def test_an_order_acknowledged_but_not_journaled_gets_its_venue_id(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue, acknowledge=False)
    at_venue = venue.order_by_client_id(order.client_order_id)
    venue.fill(at_venue.venue_order_id, "1")

    report = await reconciled(db, strategy_id, venue)

    assert report.acknowledged == (order.client_order_id,)
    assert len(report.fills_recorded) == 1  # the fill found its order through the new venue id
    await assert_level(db, strategy_id, venue)


async def test_an_order_the_venue_forgot_is_unknown_reported_and_kept(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue)
    venue.forget(venue.order_by_client_id(order.client_order_id).venue_order_id)

    report = await reconciled(db, strategy_id, venue)
    again = await reconciled(db, strategy_id, venue)

    assert report.missing_at_venue == (order.client_order_id,)
    assert again.missing_at_venue == ()  # already unknown: nothing new to say
    journaled = await db.orders.get_by_client_order_id(order.client_order_id)
    assert journaled.status == "unknown"
    async with journal_of(db, strategy_id, venue) as journal:
        restored = await journal.restore()
    assert [o.client_order_id for o in restored.open_orders] == [order.client_order_id]


async def test_an_order_filled_then_forgotten_by_the_venue_is_filled_not_unknown(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue)
    venue_id = venue.order_by_client_id(order.client_order_id).venue_order_id
    trade = venue.fill(venue_id)
    venue.forget(venue_id)

    report = await reconciled(db, strategy_id, venue)

    assert report.fills_recorded == (trade.trade_id,)
    assert report.missing_at_venue == report.refused == ()
    journaled = await db.orders.get_by_client_order_id(order.client_order_id)
    assert (journaled.status, journaled.filled_quantity) == ("filled", trade.quantity)
    [position] = await db.orders.positions(strategy_id=strategy_id)
    assert position.quantity == venue.balance("BTC") - START["BTC"]


async def test_foreign_orders_and_trades_are_reported_not_journaled(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        await placed(journal, venue)
    await venue.create_order(
        NewOrder("manual-1", "BTCUSDT", "sell", "limit", Decimal(1), limit_price=Decimal(100))
    )
    done = await venue.create_order(NewOrder("manual-2", "ETHUSDT", "buy", "market", Decimal(1)))
    foreign_trade = venue.fill(done.venue_order_id)
    stray_cid = f"{journal.client_id_prefix}stray"
    await venue.create_order(
        NewOrder(stray_cid, "BTCUSDT", "buy", "limit", Decimal(1), limit_price=Decimal(90))
    )

    report = await reconciled(db, strategy_id, venue, symbols=("ETHUSDT",))

    assert report.foreign_orders == (venue.order_by_client_id("manual-1"),)
    assert report.foreign_trades == (foreign_trade,)
    assert report.stray_orders == (venue.order_by_client_id(stray_cid),)
    assert not report.changed
    for cid in ("manual-1", "manual-2", stray_cid):
        with pytest.raises(LookupError):
            await db.orders.get_by_client_order_id(cid)
    assert await db.orders.refused(strategy_id=strategy_id) == []
    assert any("foreign" in line for line in report.summary())
    assert any(stray_cid in line for line in report.summary())
    await assert_level(db, strategy_id, venue, symbols=("BTCUSDT", "ETHUSDT"))


async def test_balances_are_recorded(db: Database, strategy_id: int, venue: MemoryVenue) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue, "2")
    venue.fill(venue.order_by_client_id(order.client_order_id).venue_order_id, price="150")

    report = await reconciled(db, strategy_id, venue)

    stored = {b.asset: b.free for b in await db.orders.balances(venue=venue.name)}
    assert stored == {"BTC": Decimal(12), "ETH": Decimal(100), "USDT": Decimal(999_700)}
    assert {a: b.free for a, b in report.balances.items()} == stored
    await assert_level(db, strategy_id, venue)


async def test_the_cursor_advances_to_the_last_trade_seen(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue, "3")
    venue_id = venue.order_by_client_id(order.client_order_id).venue_order_id
    trades = [venue.fill(venue_id, "1"), venue.fill(venue_id, "1")]

    await reconciled(db, strategy_id, venue)

    async with journal_of(db, strategy_id, venue) as journal:
        restored = await journal.restore()
    assert restored.cursors[trades_stream("BTCUSDT")] == trades[-1].trade_id


async def test_a_reconcile_cut_short_leaves_the_cursor_before_unrecorded_trades(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue, "3")
    venue_id = venue.order_by_client_id(order.client_order_id).venue_order_id
    ours = venue.fill(venue_id, "1")
    foreign = await venue.create_order(
        NewOrder("manual-1", "BTCUSDT", "sell", "market", Decimal(1))
    )
    venue.fill(foreign.venue_order_id)
    later = venue.fill(venue_id, "1")
    # The venue goes away when asked whose trade 2 is (our order, open, came with the open
    # orders: the only order asked about by id is the foreign one).
    venue.fail("fetch_order", VenueUnavailable(venue.name, "connection reset"), after=0)

    with pytest.raises(VenueUnavailable):
        await reconciled(db, strategy_id, venue)

    async with journal_of(db, strategy_id, venue) as journal:
        restored = await journal.restore()
    assert trades_stream("BTCUSDT") not in restored.cursors
    assert restored.open_orders[0].filled_quantity == ours.quantity  # what it recorded stands

    report = await reconciled(db, strategy_id, venue)

    assert report.duplicate_fills == (ours.trade_id,)
    assert report.fills_recorded == (later.trade_id,)
    await assert_level(db, strategy_id, venue)


async def test_a_trade_of_an_order_never_intended_is_reported_not_journaled(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        stray_cid = f"{journal.client_id_prefix}stray"
    stray = await venue.create_order(NewOrder(stray_cid, "BTCUSDT", "buy", "market", Decimal(1)))
    trade = venue.fill(stray.venue_order_id)

    report = await reconciled(db, strategy_id, venue, symbols=("BTCUSDT",))

    assert report.stray_trades == (trade,)
    assert report.fills_recorded == report.refused == ()
    assert await db.orders.list(strategy_id=strategy_id) == []
    assert await db.orders.positions(strategy_id=strategy_id) == []
    # The journal keeps its refusal: the one trace of an order sent without an intent.
    [refusal] = await db.orders.refused(strategy_id=strategy_id)
    assert refusal.details is not None
    assert refusal.details["client_order_id"] == stray_cid


async def test_an_unknown_order_the_venue_reports_again_takes_its_status(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue)
        await journal.mark_unknown(order.client_order_id, reason="lost track", wait=True)
    venue.fill(venue.order_by_client_id(order.client_order_id).venue_order_id, "1")

    report = await reconciled(db, strategy_id, venue)

    assert report.status_changes == ()  # the fill itself moved it out of unknown
    assert report.missing_at_venue == ()
    await assert_level(db, strategy_id, venue)


PAPER_BARS = [
    (100.0, 101.5, 99.25, 101.0),
    (101.0, 102.0, 100.5, 101.75),
    (101.75, 103.0, 98.5, 99.0),  # dips to 98.5: a buy limit at 99 fills at this bar's close
    (99.0, 106.0, 99.0, 105.5),
]


async def test_a_bot_that_crashed_before_recording_answers_is_reconciled_with_the_paper_exchange(
    db: Database, strategy_id: int, tmp_path: Path
) -> None:
    symbol = "BTC/USDT"
    clock = ManualClock(bar_seconds=1.0)
    data = write_bars(tmp_path / "bars.csv", PAPER_BARS)
    async with (
        paper_exchange(tmp_path, data, clock=clock, commission="0.001") as server,
        CcxtVenue.connect(server.url, VenueCredentials.placeholder(), name="paper") as venue,
    ):
        clock.to_bar(1)
        async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
            sent = []
            for side, type_, quantity, price in (
                ("buy", "market", "2", None),  # fills at once, at bar 1's open
                ("buy", "limit", "1", "99"),  # rests until bar 2 trades through it
                ("sell", "limit", "1", "110"),  # cancelled at the exchange while the bot is down
            ):
                order = await journal.intend(
                    OrderRequest(
                        symbol=symbol,
                        side=side,  # type: ignore[arg-type]
                        type=type_,  # type: ignore[arg-type]
                        quantity=Decimal(quantity),
                        limit_price=None if price is None else Decimal(price),
                    )
                )
                await journal.submitted(order.client_order_id)
                await venue.create_order(
                    NewOrder(
                        client_order_id=order.client_order_id,
                        symbol=symbol,
                        side=order.side,
                        type=order.type,
                        quantity=order.quantity,
                        limit_price=order.limit_price,
                    )
                )
                sent.append(order.client_order_id)
            never_sent = await journal.intend(
                OrderRequest(symbol=symbol, side="buy", quantity=Decimal(1))
            )
            # The crash: no answer, acknowledgement or fill of the exchange is ever recorded.
        await venue.cancel_order(symbol, client_order_id=sent[2])
        clock.to_bar(3)

        async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
            await journal.restore()
            report = await reconcile(journal, venue)
        async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
            await journal.restore()
            again = await reconcile(journal, venue)

        assert set(report.acknowledged) == set(sent)
        assert report.never_sent == (never_sent.client_order_id,)
        assert report.status_changes == ((sent[2], "open", "cancelled"),)
        assert len(report.fills_recorded) == 2
        assert not again.changed and again.duplicate_fills == ()
        for cid in sent:
            at_exchange = await venue.fetch_order(symbol, client_order_id=cid)
            journaled = await db.orders.get_by_client_order_id(cid)
            assert at_exchange is not None
            assert (journaled.venue_order_id, journaled.status, journaled.filled_quantity) == (
                at_exchange.venue_order_id,
                at_exchange.status,
                at_exchange.filled_quantity,
            )
        assert await venue.fetch_order(symbol, client_order_id=never_sent.client_order_id) is None
        trades = await venue.fetch_my_trades(symbol)
        [position] = await db.orders.positions(strategy_id=strategy_id)
        assert position.quantity == sum(t.quantity for t in trades) == Decimal(3)
        assert position.fees == sum(t.fee for t in trades)
        balances = await venue.fetch_balance()
        stored = {b.asset: b.total for b in await db.orders.balances(venue="paper")}
        assert stored == {asset: b.total for asset, b in balances.items()}
        assert stored["BTC"] == position.quantity
        async with db.journal(strategy_id=strategy_id, venue="paper") as journal:
            restored = await journal.restore()
        assert restored.open_orders == restored.in_doubt == ()
        assert restored.cursors[trades_stream(symbol)] == trades[-1].trade_id


async def test_a_fill_the_journal_refuses_is_reported_and_not_offered_again(
    db: Database, strategy_id: int, venue: MemoryVenue
) -> None:
    async with journal_of(db, strategy_id, venue) as journal:
        order = await placed(journal, venue)
        await journal.cancelled(order.client_order_id, wait=True)  # the journal believed a cancel
    trade = venue.fill(venue.order_by_client_id(order.client_order_id).venue_order_id)

    report = await reconciled(db, strategy_id, venue, symbols=("BTCUSDT",))
    again = await reconciled(db, strategy_id, venue, symbols=("BTCUSDT",))

    assert report.fills_recorded == () and len(report.refused) == 1
    assert order.client_order_id in report.refused[0]
    assert again.refused == ()  # the cursor moved past it: one refusal kept, not one per restart
    [refusal] = await db.orders.refused(strategy_id=strategy_id)
    journaled = await db.orders.get_by_client_order_id(order.client_order_id)
    assert refusal.order_id == journaled.id
    assert (journaled.status, journaled.filled_quantity) == ("cancelled", Decimal(0))
    assert refusal.details is not None and trade.trade_id in str(refusal.details)
