"""Calling a ccxt exchange: passing faults (dropped connections, 5xx, timeouts, rate limits)
are tried again under a `RetryBudget`; everything else, and a fault past the budget, becomes
our VenueError family here, once, with every secret scrubbed from the message.
"""

from __future__ import annotations

import contextlib
import decimal
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
import ccxt.async_support as ccxt_async

from quantflow_async.errors import MalformedVenueAnswer, VenueRejected, VenueUnavailable
from quantflow_async.live.credentials import scrub
from quantflow_async.live.venue_answers import bad_raw_field
from quantflow_async.live.venue_retry import Fault, RetryBudget

logger = logging.getLogger(__name__)

T = TypeVar("T")

PARSE_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, ArithmeticError)
"""What ccxt raises when it cannot read an answer."""

_MAX_MESSAGE: Final = 400  # enough of a venue's error text to act on, not a whole HTML page
_HTTP_STATUS = re.compile(r" (?:GET|POST|PUT|DELETE) \S+ (\d{3}) ")
_VENUE_CODE = re.compile(r"\"code\"\s*:\s*(-?\d+)")


class CcxtCalls:
    """The retrying, translating caller one `CcxtVenue` sends every ccxt request through."""

    def __init__(self, exchange: Any, venue: str, secrets: tuple[str, ...]) -> None:
        self._exchange = exchange
        self.venue = venue
        self.secrets = secrets

    async def call(self, op: str, request: Callable[[], Awaitable[T]], budget: RetryBudget) -> T:
        """`request()`, tried again through passing faults until `budget` is spent."""
        while True:
            answer = await self.attempt(op, request)
            if not isinstance(answer, ccxt_async.BaseError):
                return answer
            await self.wait_or_raise(op, answer, budget)

    async def wait_or_raise(
        self, op: str, error: ccxt_async.BaseError, budget: RetryBudget, what: str = ""
    ) -> None:
        """Sleep before the next try of a passing fault; raise anything else, or a fault past
        the budget, as our error. Called outside the `except` block, so the raw ccxt error
        (its URL, its signature) is not chained to what the caller sees."""
        text = self.scrub(str(error))
        cause = _scrubbed_copy(error, text)
        subject = f"{op} {what}".rstrip()
        fault = fault_of(error)
        if fault is None:
            raise VenueRejected(
                self.venue, f"{subject} refused: {type(error).__name__}: {text}", _code_of(error)
            ) from cause
        retry_after = self._retry_after() if fault is Fault.RATE_LIMITED else None
        delay = budget.next_delay(fault, retry_after)
        if delay is not None:
            logger.warning(
                "%s: %s: %s, retry %d in %.2fs: %s",
                self.venue,
                subject,
                fault.value,
                budget.retries,
                delay,
                text,
            )
        if delay is None or not await budget.sleep(delay):
            raise VenueUnavailable(
                self.venue, f"{subject} {budget.spent()}, last: {fault.value}: {text}"
            ) from cause

    async def attempt(
        self, op: str, request: Callable[[], Awaitable[T]]
    ) -> T | ccxt_async.BaseError:
        """One try of `request`: the venue's raw answer, or the ccxt error it raised, for the
        caller to settle; an answer ccxt cannot read raises at once (`unreadable`).

        In a decimal context of its own: ccxt sets the rounding and the traps of the context it
        finds, which is the caller's, and every task's that shares it."""
        try:
            with decimal.localcontext():
                return await request()
        except ccxt_async.BaseError as exc:
            return exc
        except PARSE_ERRORS as exc:
            raise self.unreadable(op, exc) from None

    def unreadable(self, op: str, error: Exception) -> MalformedVenueAnswer:
        """ccxt failed to read the venue's answer: name the raw field that is wrong if we can."""
        answer: object = None
        with contextlib.suppress(TypeError, ValueError):
            answer = json.loads(getattr(self._exchange, "last_http_response", None) or "")
        field, reason = bad_raw_field(answer) or (op, f"{type(error).__name__}: {error}")
        return MalformedVenueAnswer(self.venue, field, self.scrub(reason))

    def scrub(self, text: str) -> str:
        text = scrub(text, self.secrets)
        return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."

    def _retry_after(self) -> float | None:
        """The Retry-After seconds of the last answer, when ccxt kept its headers."""
        headers = getattr(self._exchange, "last_response_headers", None)
        if not isinstance(headers, Mapping):
            return None
        for key, value in headers.items():
            if str(key).lower() == "retry-after":
                try:
                    seconds = float(value)
                except (TypeError, ValueError):
                    return None  # an HTTP date: fall back to the policy's wait
                return seconds if 0 <= seconds < float("inf") else None
        return None


def fault_of(error: BaseException) -> Fault | None:
    """The passing fault `error` is, or None for a refusal that another try would not change."""
    if isinstance(error, ccxt_async.RequestTimeout):
        return Fault.TIMEOUT
    if isinstance(error, ccxt_async.DDoSProtection | ccxt_async.RateLimitExceeded):
        return Fault.RATE_LIMITED
    if isinstance(error, ccxt_async.ExchangeNotAvailable):
        # ccxt also maps a 4xx without an error code here; that is an answer, not a fault.
        match = _HTTP_STATUS.search(str(error))
        if match is None:
            return Fault.CONNECTION
        status = int(match.group(1))
        return Fault.SERVER if status >= 500 else None
    if isinstance(error, ccxt_async.InvalidNonce):
        return None
    if isinstance(error, ccxt_async.NetworkError):
        return Fault.CONNECTION
    if isinstance(error, ccxt_async.OperationFailed):
        return Fault.SERVER  # Binance's -1000/-1001/-1006: unknown error, execution unknown
    if isinstance(error, ccxt_async.ExchangeError) and isinstance(
        error.__cause__, aiohttp.ClientError
    ):
        return Fault.CONNECTION  # a reply cut short mid-body
    return None


def is_duplicate(error: BaseException) -> bool:
    """Whether `error` is the venue refusing a client order id it already holds."""
    if isinstance(error, ccxt_async.DuplicateOrderId):
        return True
    return isinstance(error, ccxt_async.InvalidOrder) and "duplicate" in str(error).lower()


def _code_of(error: BaseException) -> int | str | None:
    match = _VENUE_CODE.search(str(error))
    return int(match.group(1)) if match else None


def _scrubbed_copy(error: BaseException, text: str) -> BaseException:
    """A copy of a ccxt error holding only the scrubbed text, to chain as the cause."""
    try:
        return type(error)(text)
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {text}")
