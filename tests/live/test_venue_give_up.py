"""CcxtVenue when every request fails: a call gives up with VenueUnavailable once its retry
policy's attempts or deadline are spent, in bounded time, with no secret in what it raises,
and an order whose fate it could not learn is never sent a second time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from quantflow_async.errors import VenueUnavailable
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.paper.server import PaperExchangeServer
from quantflow_async.live.venue import NewOrder
from quantflow_async.live.venue_retry import RetryPolicy
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.paper import paper_exchange
from tests.support.venues import SYMBOL, orders_on_exchange, rising_bars, sent_to_exchange

KEY = "giveUpKey0123456789abcdefKEY"
SECRET = "giveUpSecret0123456789abcdefSECRET"
CLIENT_TIMEOUT = 0.3
BY_ATTEMPTS = RetryPolicy(attempts=2, first_delay=0.01, max_delay=0.02, deadline=60.0)
BY_DEADLINE = RetryPolicy(attempts=10_000, first_delay=0.01, max_delay=0.05, deadline=1.0)
ORDER = NewOrder("lost-1", SYMBOL, "buy", "market", Decimal("0.5"))
# Faults whose request reached the exchange before the client lost the reply.
FORWARDED = (Fault.DROP_AFTER, Fault.HOLD)


@pytest.fixture
async def paper(tmp_path: Path) -> AsyncIterator[PaperExchangeServer]:
    data = rising_bars(tmp_path / "bars.csv", count=10)
    keys = {"api_key": KEY, "api_secret": SECRET}
    async with paper_exchange(tmp_path, data, bar_seconds=60.0, cash="100000", **keys) as server:
        yield server


def bound(policy: RetryPolicy) -> float:
    """The longest a call may take under `policy` when every request fails."""
    by_deadline = policy.deadline + CLIENT_TIMEOUT
    # the send, then a lookup of its own attempts (each try a client timeout at worst)
    by_attempts = (policy.attempts + 2) * (CLIENT_TIMEOUT + policy.max_delay)
    return min(by_deadline, by_attempts) + 1.0


def assert_no_secret(error: BaseException) -> None:
    seen: BaseException | None = error
    while seen is not None:
        text = f"{seen} {seen!r}"
        assert KEY not in text and SECRET not in text, text
        assert "signature=" not in text.replace("signature=***", ""), text
        seen = seen.__cause__ or seen.__context__


async def give_up_on(
    paper: PaperExchangeServer, fault: Fault, policy: RetryPolicy
) -> tuple[VenueUnavailable, float, FaultProxy]:
    """create_order through a proxy that meets every request with `fault`, markets loaded
    beforehand so that the order itself is what meets it."""
    async with FaultProxy(
        paper.port, seed=1, rates={fault: 1.0}, hold=CLIENT_TIMEOUT + 0.5
    ) as proxy:
        proxy.enabled = False
        async with CcxtVenue.connect(
            proxy.url, VenueCredentials(KEY, SECRET), policy=policy, timeout=CLIENT_TIMEOUT
        ) as venue:
            await venue.fetch_balance()
            proxy.enabled = True
            started = time.monotonic()
            with pytest.raises(VenueUnavailable) as caught:
                await venue.create_order(ORDER)
            elapsed = time.monotonic() - started
    return caught.value, elapsed, proxy


@pytest.mark.parametrize("fault", [Fault.HTTP_503, Fault.DROP_BEFORE, *FORWARDED])
async def test_create_order_gives_up_when_its_attempts_are_spent(
    paper: PaperExchangeServer, fault: Fault
) -> None:
    error, elapsed, proxy = await give_up_on(paper, fault, BY_ATTEMPTS)
    assert elapsed < bound(BY_ATTEMPTS), elapsed
    assert "create_order" in str(error) and "lost-1" in str(error)
    assert f"after {BY_ATTEMPTS.attempts + 1} tries" in str(error)
    assert_no_secret(error)
    landed = 1 if fault in FORWARDED else 0
    assert sent_to_exchange(proxy)["lost-1"] == landed
    assert orders_on_exchange(paper.config.state)["lost-1"] == landed


@pytest.mark.parametrize("fault", [Fault.HTTP_503, *FORWARDED])
async def test_create_order_gives_up_when_its_deadline_is_spent(
    paper: PaperExchangeServer, fault: Fault
) -> None:
    error, elapsed, proxy = await give_up_on(paper, fault, BY_DEADLINE)
    assert BY_DEADLINE.deadline - BY_DEADLINE.max_delay - 0.05 <= elapsed, elapsed
    assert elapsed < bound(BY_DEADLINE), elapsed
    assert "gave up" in str(error) and "lost-1" in str(error)
    assert_no_secret(error)
    assert proxy.faults >= 3, proxy.injected  # it kept trying until the deadline
    landed = 1 if fault in FORWARDED else 0
    assert sent_to_exchange(proxy)["lost-1"] == landed
    assert orders_on_exchange(paper.config.state)["lost-1"] == landed


async def test_a_second_create_after_giving_up_looks_the_order_up_first(
    paper: PaperExchangeServer,
) -> None:
    async with FaultProxy(paper.port, seed=1, rates={Fault.DROP_AFTER: 1.0}) as proxy:
        proxy.enabled = False
        async with CcxtVenue.connect(
            proxy.url, VenueCredentials(KEY, SECRET), policy=BY_ATTEMPTS, timeout=CLIENT_TIMEOUT
        ) as venue:
            await venue.fetch_balance()
            proxy.enabled = True
            with pytest.raises(VenueUnavailable):
                await venue.create_order(ORDER)
            proxy.enabled = False  # the venue is back
            order = await venue.create_order(ORDER)
    assert (order.client_order_id, order.status) == ("lost-1", "filled")
    assert sent_to_exchange(proxy)["lost-1"] == 1
    assert orders_on_exchange(paper.config.state)["lost-1"] == 1
