"""A stop ends a venue call's retries: inside `no_retries_once(stop)` a call that meets a
passing fault is not tried again once `stop` is set, so a bot stopped during a venue outage
stops in moments, not after its retry budget (which a container's stop timeout would cut
short with SIGKILL). Outside it, and before the stop, retries are what the policy says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from quantflow_async import Database
from quantflow_async.backtest.strategies import strategy_class
from quantflow_async.errors import VenueUnavailable
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.order_flow import send_order
from quantflow_async.live.orders import OrderRequest
from quantflow_async.live.runner import LiveOptions, LiveRunReport, run_live
from quantflow_async.live.venue import VenueOrder
from quantflow_async.live.venue_retry import Fault as Passing
from quantflow_async.live.venue_retry import RetryBudget, RetryPolicy, no_retries_once
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.paper import ManualClock, paper_exchange
from tests.support.venues import rising_bars

# Under this policy a call would keep trying for a minute.
PATIENT = RetryPolicy(attempts=10_000, first_delay=0.05, max_delay=0.2, deadline=60.0)
ACCOUNT = "GET /api/v3/account"  # fetch_balance: what a decision asks first
OPEN_ORDERS = "GET /api/v3/openOrders"  # what reconciling and cancelling on exit ask first


@dataclass
class Paper:
    clock: ManualClock
    proxy: FaultProxy

    def venue(self) -> CcxtVenue:
        return CcxtVenue.connect(
            self.proxy.url, VenueCredentials.placeholder(), policy=PATIENT, timeout=2.0
        )


@pytest.fixture
async def paper(tmp_path: Path) -> AsyncIterator[Paper]:
    clock = ManualClock(bar_seconds=60.0)
    data = rising_bars(tmp_path / "bars.csv", count=50)
    async with paper_exchange(
        tmp_path, data, clock=clock, bar_seconds=60.0, cash="100000"
    ) as server:
        async with FaultProxy(server.port, seed=3) as proxy:
            yield Paper(clock, proxy)


def polls(proxy: FaultProxy) -> int:
    return sum(" /api/v3/klines" in line for line, _ in proxy.forwarded)


async def wait_for(condition: object, *, within: float = 30.0) -> None:
    assert callable(condition)
    with anyio.fail_after(within):
        while not condition():
            await anyio.sleep(0.01)


async def test_a_budget_made_inside_allows_no_retry_once_stopped() -> None:
    stop = anyio.Event()
    with no_retries_once(stop):
        budget = RetryBudget(PATIENT)
    outside = RetryBudget(PATIENT)
    assert budget.next_delay(Passing.CONNECTION) is not None
    stop.set()
    assert budget.next_delay(Passing.CONNECTION) is None
    assert budget.spent().startswith("not tried again: stopping, gave up after 2 tries")
    assert outside.next_delay(Passing.CONNECTION) is not None
    assert outside.spent().startswith("gave up after 2 tries")


async def test_a_stop_cuts_the_wait_for_the_next_try_short() -> None:
    stop = anyio.Event()
    with no_retries_once(stop):
        budget = RetryBudget(RetryPolicy(first_delay=30.0, max_delay=30.0, deadline=60.0))
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: _set_soon(stop))
        with anyio.fail_after(10):  # the wait itself is 15 to 30 s
            assert await budget.sleep(budget.next_delay(Passing.CONNECTION) or 0) is False


async def _set_soon(stop: anyio.Event) -> None:
    await anyio.sleep(0.05)
    stop.set()


async def test_a_call_meeting_faults_ends_with_venue_unavailable_when_stopped(
    paper: Paper,
) -> None:
    stop = anyio.Event()
    paper.proxy.script(ACCOUNT, *[Fault.HTTP_503] * 10_000)
    raised: list[BaseException] = []
    async with paper.venue() as venue:

        async def fetch_balance() -> None:
            with no_retries_once(stop):
                try:
                    await venue.fetch_balance()
                except VenueUnavailable as exc:
                    raised.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(fetch_balance)
            await wait_for(lambda: paper.proxy.injected[Fault.HTTP_503] >= 3)
            stop.set()
            tries_at_stop = paper.proxy.injected[Fault.HTTP_503]
    assert "fetch_balance not tried again: stopping" in str(raised[0])
    assert paper.proxy.injected[Fault.HTTP_503] <= tries_at_stop + 1  # at most the one in flight


async def test_a_call_whose_stop_is_not_set_keeps_trying(paper: Paper) -> None:
    paper.proxy.script(ACCOUNT, Fault.HTTP_503, Fault.HTTP_503)
    async with paper.venue() as venue:
        with no_retries_once(anyio.Event()):
            balances = await venue.fetch_balance()
    assert balances["USDT"].total > 0
    assert paper.proxy.injected[Fault.HTTP_503] == 2


async def test_a_runner_stopped_mid_decision_while_the_venue_fails_stops_without_retrying(
    paper: Paper, db: Database, strategy_id: int
) -> None:
    stop = anyio.Event()
    options = LiveOptions(symbol="BTCUSDT", poll_interval=0.01)
    paper.clock.to_bar(5)
    async with paper.venue() as venue:

        async def stop_once_the_decision_meets_the_fault() -> None:
            # Once a second poll is asked for, the first was answered: bar 5 is forming.
            await wait_for(lambda: polls(paper.proxy) >= 2)
            paper.proxy.script(ACCOUNT, *[Fault.HTTP_503] * 10_000)
            paper.clock.to_bar(6)  # a bar closes: the runner decides, and asks for the balance
            await wait_for(lambda: paper.proxy.injected[Fault.HTTP_503] >= 3)
            stop.set()
            tries_at_stop.append(paper.proxy.injected[Fault.HTTP_503])

        tries_at_stop: list[int] = []
        async with anyio.create_task_group() as group:
            group.start_soon(stop_once_the_decision_meets_the_fault)
            report = await run_live(
                db, strategy_class("sma_cross"), None, venue, strategy_id=strategy_id,
                options=options, stop=stop,
            )  # fmt: skip
    assert report.stopped_by == "stop"
    assert report.bars_decided == 0
    assert paper.proxy.injected[Fault.HTTP_503] <= tries_at_stop[0] + 1


async def resting_limit_buy(db: Database, strategy_id: int, venue: CcxtVenue) -> str:
    """A buy limit far below the price, journaled and open on the venue; its client id."""
    async with db.journal(strategy_id=strategy_id, venue=venue.name) as journal:
        request = OrderRequest(
            symbol="BTCUSDT", side="buy", quantity=Decimal(1), type="limit",
            limit_price=Decimal(50),
        )  # fmt: skip
        order = await send_order(journal, venue, request)
    assert order.status == "open"
    return order.client_order_id


async def stopped_at_once_cancelling_on_exit(
    paper: Paper, db: Database, strategy_id: int, *open_orders: Fault
) -> tuple[LiveRunReport, VenueOrder | None]:
    """A run with a resting buy, stopped before it starts, `open_orders` meeting the venue's
    open-order requests in turn; its report and the buy as the venue holds it after."""
    paper.clock.to_bar(5)
    async with paper.venue() as venue:
        cid = await resting_limit_buy(db, strategy_id, venue)
        stop = anyio.Event()
        stop.set()  # before the run: a fault in it is its last try
        paper.proxy.script(OPEN_ORDERS, *open_orders)
        report = await run_live(
            db, strategy_class("sma_cross"), None, venue, strategy_id=strategy_id,
            options=LiveOptions(symbol="BTCUSDT", cancel_on_exit=True), stop=stop,
        )  # fmt: skip
        return report, await venue.fetch_order("BTCUSDT", client_order_id=cid)


async def test_a_stop_during_a_failing_reconciliation_still_cancels_on_exit(
    paper: Paper, db: Database, strategy_id: int
) -> None:
    report, at_venue = await stopped_at_once_cancelling_on_exit(
        paper, db, strategy_id, Fault.HTTP_503
    )
    assert (report.stopped_by, report.reconciled, report.bars_decided) == ("stop", None, 0)
    assert report.orders_cancelled_on_exit == 1
    assert at_venue is not None and at_venue.status == "cancelled"


async def test_cancelling_on_exit_is_still_tried_again_after_a_stop(
    paper: Paper, db: Database, strategy_id: int
) -> None:
    # the reconciliation's request passes; the exit's first meets a fault
    report, at_venue = await stopped_at_once_cancelling_on_exit(
        paper, db, strategy_id, Fault.PASS, Fault.HTTP_503
    )
    assert report.reconciled is not None and report.orders_cancelled_on_exit == 1
    assert paper.proxy.injected[Fault.HTTP_503] == 1
    assert at_venue is not None and at_venue.status == "cancelled"


async def test_a_retry_budgets_child_and_nested_blocks_see_every_stop() -> None:
    outer, inner = anyio.Event(), anyio.Event()
    with no_retries_once(outer), no_retries_once(inner):
        budget = RetryBudget(PATIENT)
    child = budget.child()  # made outside the blocks, for a call that settles this one
    outer.set()
    assert budget.stopping and child.stopping
    assert child.next_delay(Passing.TIMEOUT) is None


async def test_a_try_cut_short_by_a_stop_is_not_counted() -> None:
    stop = anyio.Event()
    with no_retries_once(stop):
        budget = RetryBudget(PATIENT)
    delay = budget.next_delay(Passing.CONNECTION)
    assert delay is not None
    stop.set()
    assert await budget.sleep(delay) is False
    assert budget.spent().startswith("not tried again: stopping, gave up after 1 tries")
