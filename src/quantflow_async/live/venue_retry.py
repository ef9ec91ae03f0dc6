"""How long a venue call keeps trying through connection faults: `RetryPolicy` and its budget.

Exponential backoff with jitter, a longer wait after a rate limit (or the venue's own
Retry-After), and one overall deadline per call. Which exceptions are faults is the adapter's
business; this module only counts and waits. Inside `no_retries_once(stop)` a call stops
trying again as soon as `stop` is set, so a stopping bot does not wait out a venue outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import anyio

from quantflow_async.errors import InvalidValue
from quantflow_async.option_checks import check_amount, check_int


class Fault(enum.Enum):
    """A passing fault worth another try, as named in logs and errors."""

    CONNECTION = "connection failed or dropped"
    SERVER = "server error (5xx)"
    TIMEOUT = "timed out"
    RATE_LIMITED = "rate limited (429/418)"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one venue call retries: up to `attempts` retries after the first try, waiting
    `first_delay` seconds, doubling up to `max_delay` (each wait jittered down by up to half),
    and giving up once `deadline` seconds have passed since the call began. After a rate limit
    the wait is at least `rate_limit_delay`, or the venue's Retry-After when it sent one.

    A request already sent when the deadline passes finishes under the client's own timeout.
    """

    attempts: int = 6
    first_delay: float = 0.25
    max_delay: float = 5.0
    deadline: float = 30.0
    rate_limit_delay: float = 1.0

    def __post_init__(self) -> None:
        check_int("attempts", self.attempts, minimum=0)
        for name in ("first_delay", "max_delay", "deadline", "rate_limit_delay"):
            check_amount(name, getattr(self, name), "seconds")
        if self.max_delay < self.first_delay:
            raise InvalidValue(
                "max_delay", f"must be >= first_delay ({self.first_delay}), got {self.max_delay}"
            )


_STOPS: ContextVar[tuple[anyio.Event, ...]] = ContextVar("quantflow_venue_retry_stops", default=())


@contextlib.contextmanager
def no_retries_once(stop: anyio.Event) -> Iterator[None]:
    """Venue calls begun inside (in this task and the tasks it starts) are not tried again
    once `stop` is set: a request in flight finishes under the client's timeout, a wait for
    the next try ends at once, and the call raises VenueUnavailable. Blocks nest: a call
    inside two stops when either is set."""
    token = _STOPS.set((*_STOPS.get(), stop))
    try:
        yield
    finally:
        _STOPS.reset(token)


class RetryBudget:
    """One call's share of a policy: the retries it has had and the moment it must stop.

    `child()` is a budget for a call made to settle this one (asking the venue whether an
    order arrived): retries of its own, the same deadline and the same stops.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        deadline: float | None = None,
        stops: tuple[anyio.Event, ...] | None = None,
    ) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.deadline = self.started + policy.deadline if deadline is None else deadline
        self.retries = 0
        self._delay = policy.first_delay
        self._stops = _STOPS.get() if stops is None else stops

    def child(self) -> RetryBudget:
        return RetryBudget(self.policy, deadline=self.deadline, stops=self._stops)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def stopping(self) -> bool:
        """Whether the stop of an enclosing `no_retries_once` is set."""
        return any(stop.is_set() for stop in self._stops)

    def spent(self) -> str:
        """Why no more tries are made, for the error that says so."""
        stopping = "not tried again: stopping, " if self.stopping else ""
        return f"{stopping}gave up after {self.retries + 1} tries in {self.elapsed:.1f}s"

    def next_delay(self, fault: Fault, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next try, or None when the budget does not allow one."""
        if self.retries >= self.policy.attempts or self.stopping:
            return None
        delay = self._delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        if fault is Fault.RATE_LIMITED:
            delay = max(delay, self.policy.rate_limit_delay if retry_after is None else retry_after)
        if time.monotonic() + delay >= self.deadline:
            return None
        self._delay = min(self._delay * 2, self.policy.max_delay)
        self.retries += 1
        return delay

    async def sleep(self, delay: float) -> bool:
        """Sleep `delay` seconds before the next try; False, at once, when a stop cuts it short
        (the try `next_delay` counted is then not made)."""
        if self._stops:
            with anyio.move_on_after(delay):
                async with anyio.create_task_group() as group:
                    for stop in self._stops:
                        group.start_soon(_cancel_when_set, stop, group.cancel_scope)
        else:
            await asyncio.sleep(delay)
        if self.stopping:
            self.retries -= 1
            return False
        return True


async def _cancel_when_set(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    await stop.wait()
    scope.cancel()
