"""`CcxtVenue`: the `Venue` protocol over a `ccxt.async_support` exchange (Binance shapes first).

Numbers are read from the raw strings Binance sends (`info`), never through a float; ccxt's
errors become our VenueError family with every secret scrubbed; connection faults are retried
under a `RetryPolicy`, and an order is re-sent only after asking the venue for its client id.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import re
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

import aiohttp
import ccxt.async_support as ccxt_async

from quantflow_async.errors import (
    InvalidValue,
    MalformedVenueAnswer,
    VenueError,
    VenueRejected,
    VenueUnavailable,
)
from quantflow_async.live.ccxt_client import binance_client
from quantflow_async.live.credentials import VenueCredentials, scrub
from quantflow_async.live.venue import (
    AssetBalance,
    Bar,
    NewOrder,
    OrderSide,
    OrderType,
    VenueOrder,
    VenueOrderStatus,
    VenueTrade,
)
from quantflow_async.live.venue_retry import Fault, RetryBudget, RetryPolicy

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TRADES_PAGE: Final = 1000  # Binance's largest myTrades page
_MAX_MESSAGE: Final = 400  # enough of a venue's error text to act on, not a whole HTML page
_HTTP_STATUS = re.compile(r" (?:GET|POST|PUT|DELETE) \S+ (\d{3}) ")
_VENUE_CODE = re.compile(r"\"code\"\s*:\s*(-?\d+)")
_CCXT_TYPES: Final = {"market": "MARKET", "limit": "LIMIT", "stop": "MARKET", "stop_limit": "LIMIT"}


class VenueState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class _ScrubbingFilter(logging.Filter):
    """Rewrites ccxt's own log records (its debug lines carry URLs, signatures and the API key
    header) without this venue's secrets."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage(), self._secrets)
        record.args = ()
        return True


class CcxtVenue:
    """A `Venue` over a ccxt async exchange: `CcxtVenue.connect(url, credentials)` for Binance
    or the paper exchange at `url`, or `CcxtVenue(exchange)` for any ccxt exchange a caller
    made (the venue closes it on `aclose()`).

    Every call retries connection faults, 5xx answers, timeouts and rate limits under
    `policy`, then raises VenueUnavailable. `create_order` is re-sent only with the same
    client order id and only after the venue said it has no such order, so it is never
    doubled; a client id this venue already sent is looked up before it is sent again.
    """

    def __init__(
        self,
        exchange: Any,
        *,
        name: str | None = None,
        policy: RetryPolicy | None = None,
        credentials: VenueCredentials | None = None,
    ) -> None:
        self.name = name or str(getattr(exchange, "id", "venue"))
        self.policy = policy or RetryPolicy()
        self._exchange = exchange
        given = (credentials.api_key, credentials.secret) if credentials else ()
        held = (getattr(exchange, attr, None) for attr in ("apiKey", "secret", "password"))
        self._secrets = tuple(s for s in (*given, *held) if isinstance(s, str) and s)
        self._read = AnswerReader(self.name)
        self._sent: set[str] = set()
        self._filter = _ScrubbingFilter(self._secrets)
        self._logger = getattr(exchange, "logger", None)
        if isinstance(self._logger, logging.Logger):
            self._logger.addFilter(self._filter)
        self._state = VenueState.OPEN

    @classmethod
    def connect(
        cls,
        base_url: str,
        credentials: VenueCredentials,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = 10.0,
        name: str | None = None,
    ) -> CcxtVenue:
        """A venue speaking Binance spot's API at `base_url`; `timeout` bounds each request."""
        exchange = binance_client(
            base_url,
            api_key=credentials.api_key,
            secret=credentials.secret,
            timeout_ms=max(1, round(timeout * 1000)),
        )
        return cls(exchange, name=name or base_url, policy=policy, credentials=credentials)

    @property
    def state(self) -> VenueState:
        return self._state

    async def __aenter__(self) -> CcxtVenue:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the ccxt client (its HTTP session). Closing twice is fine."""
        if self._state is VenueState.CLOSED:
            return
        self._state = VenueState.CLOSED
        try:
            await self._exchange.close()
        finally:
            if isinstance(self._logger, logging.Logger):
                self._logger.removeFilter(self._filter)

    def __del__(self) -> None:
        if getattr(self, "_state", VenueState.CLOSED) is VenueState.OPEN:
            warnings.warn(
                f"CcxtVenue {self.name!r} was not closed: await venue.aclose()",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )

    # -- orders ------------------------------------------------------------------------

    async def create_order(self, order: NewOrder) -> VenueOrder:
        self._check_open()
        cid = order.client_order_id
        budget = RetryBudget(self.policy)
        if cid in self._sent:
            found = await self._order_by_client_id(order.symbol, cid, budget.child())
            if found is not None:
                return found
        while True:
            self._sent.add(cid)
            try:
                raw = await self._send_order(order)
            except ccxt_async.BaseError as exc:
                error: ccxt_async.BaseError = exc
            except _PARSE_ERRORS as exc:
                raise self._unreadable("create_order", exc) from None
            else:
                return self._read.order(raw)
            if _is_duplicate(error):
                # Our own id is already there: an earlier send arrived after all.
                found = await self._order_by_client_id(order.symbol, cid, budget.child())
                if found is not None:
                    return found
            await self._wait_or_raise("create_order", error, budget, f"client id {cid!r}")
            found = await self._order_by_client_id(order.symbol, cid, budget.child())
            if found is not None:
                return found

    async def cancel_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder:
        self._check_open()
        params = _order_params(venue_order_id, client_order_id)
        budget = RetryBudget(self.policy)
        while True:
            try:
                raw = await self._exchange.cancel_order(venue_order_id or "", symbol, params)
            except ccxt_async.BaseError as exc:
                error: ccxt_async.BaseError = exc
            except _PARSE_ERRORS as exc:
                raise self._unreadable("cancel_order", exc) from None
            else:
                return self._read.order(raw)
            if isinstance(error, ccxt_async.OrderNotFound):
                # After a retry the first cancel may have landed; on a first try the order
                # may be filled already: either way the order itself is the answer.
                found = await self._call(
                    "fetch_order",
                    lambda: self._fetch_raw_order(symbol, venue_order_id, client_order_id),
                    budget.child(),
                )
                if found is not None:
                    return self._read.order(found)
            what = f"order {venue_order_id or client_order_id!r}"
            await self._wait_or_raise("cancel_order", error, budget, what)

    async def fetch_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder | None:
        self._check_open()
        _order_params(venue_order_id, client_order_id)
        raw = await self._call(
            "fetch_order",
            lambda: self._fetch_raw_order(symbol, venue_order_id, client_order_id),
            RetryBudget(self.policy),
        )
        return None if raw is None else self._read.order(raw)

    async def fetch_open_orders(self, symbol: str) -> Sequence[VenueOrder]:
        self._check_open()
        raw = await self._call(
            "fetch_open_orders",
            lambda: self._exchange.fetch_open_orders(symbol),
            RetryBudget(self.policy),
        )
        return [self._read.order(item) for item in self._read.listing(raw, "open orders")]

    # -- account and market data -------------------------------------------------------

    async def fetch_my_trades(
        self, symbol: str, *, since: datetime | None = None, after_trade_id: str | None = None
    ) -> Sequence[VenueTrade]:
        """Our executions on `symbol`, oldest first: all of them, those from `since`, or those
        with an id above `after_trade_id` (Binance's numeric trade ids, via `fromId`), fetched
        page by page until none is left."""
        self._check_open()
        after = _trade_number(after_trade_id)
        since_ms = None if since is None else round(since.timestamp() * 1000)
        from_id: int | None = 0 if since_ms is None else None
        if after is not None:
            from_id = after + 1
        trades: dict[str, VenueTrade] = {}
        while True:
            raw = await self._call(
                "fetch_my_trades",
                self._trades_page(symbol, since_ms, from_id),
                RetryBudget(self.policy),
            )
            page = [self._read.trade(item) for item in self._read.listing(raw, "trades")]
            fresh = [t for t in page if t.trade_id not in trades]
            trades.update((t.trade_id, t) for t in fresh)
            if len(page) < _TRADES_PAGE or not fresh:
                break
            from_id = max(_trade_number(t.trade_id) or 0 for t in page) + 1
        chosen = [
            t
            for t in trades.values()
            if (after is None or (_trade_number(t.trade_id) or 0) > after)
            and (since is None or t.executed_at >= since)
        ]
        return sorted(chosen, key=lambda t: (t.executed_at, _sort_key(t.trade_id)))

    async def fetch_balance(self) -> Mapping[str, AssetBalance]:
        self._check_open()
        raw = await self._call(
            "fetch_balance", lambda: self._exchange.fetch_balance(), RetryBudget(self.policy)
        )
        return self._read.balances(raw)

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> Sequence[Bar]:
        """Bars of `timeframe` (e.g. "1m"), oldest first; the last one may still be forming."""
        self._check_open()
        since_ms = None if since is None else round(since.timestamp() * 1000)
        budget = RetryBudget(self.policy)
        if getattr(self._exchange, "id", None) == "binance":
            # ccxt's fetch_ohlcv hands back floats; the raw klines keep Binance's strings.
            rows = await self._call(
                "fetch_ohlcv", lambda: self._raw_klines(symbol, timeframe, since_ms, limit), budget
            )
            now_ms = self._exchange.milliseconds()
            listing = self._read.listing(rows, "klines")
            return [self._read.kline(row, now_ms) for row in listing]
        rows = await self._call(
            "fetch_ohlcv",
            lambda: self._exchange.fetch_ohlcv(symbol, timeframe, since_ms, limit),
            budget,
        )
        seconds = self._exchange.parse_timeframe(timeframe)
        now_ms = self._exchange.milliseconds()
        listing = self._read.listing(rows, "ohlcv")
        return [self._read.ohlcv(row, seconds, now_ms) for row in listing]

    # -- the ccxt calls ----------------------------------------------------------------

    async def _send_order(self, order: NewOrder) -> Any:
        params: dict[str, Any] = {**order.extra, "clientOrderId": order.client_order_id}
        if order.stop_price is not None:
            params["triggerPrice"] = order.stop_price
        if order.time_in_force is not None:
            params["timeInForce"] = order.time_in_force
        return await self._exchange.create_order(
            order.symbol,
            _CCXT_TYPES[order.type].lower(),
            order.side,
            order.quantity,
            order.limit_price,
            params,
        )

    async def _fetch_raw_order(
        self, symbol: str, venue_order_id: str | None, client_order_id: str | None
    ) -> Any:
        params = _order_params(venue_order_id, client_order_id)
        try:
            return await self._exchange.fetch_order(venue_order_id or "", symbol, params)
        except ccxt_async.OrderNotFound:
            return None

    async def _order_by_client_id(
        self, symbol: str, client_order_id: str, budget: RetryBudget
    ) -> VenueOrder | None:
        raw = await self._call(
            "fetch_order",
            lambda: self._fetch_raw_order(symbol, None, client_order_id),
            budget,
        )
        return None if raw is None else self._read.order(raw)

    def _trades_page(
        self, symbol: str, since_ms: int | None, from_id: int | None
    ) -> Callable[[], Awaitable[Any]]:
        """One myTrades page: from `from_id` when given (Binance ignores startTime then)."""
        params = {} if from_id is None else {"fromId": from_id}
        since = since_ms if from_id is None else None
        return lambda: self._exchange.fetch_my_trades(symbol, since, _TRADES_PAGE, params)

    async def _raw_klines(
        self, symbol: str, timeframe: str, since_ms: int | None, limit: int | None
    ) -> Any:
        await self._exchange.load_markets()
        request: dict[str, Any] = {
            "symbol": self._exchange.market(symbol)["id"],
            "interval": timeframe,
        }
        if since_ms is not None:
            request["startTime"] = since_ms
        if limit is not None:
            request["limit"] = limit
        return await self._exchange.publicGetKlines(request)

    # -- retries and errors ------------------------------------------------------------

    async def _call(self, op: str, request: Callable[[], Awaitable[T]], budget: RetryBudget) -> T:
        """`request()`, tried again through passing faults until `budget` is spent."""
        while True:
            try:
                return await request()
            except ccxt_async.BaseError as exc:
                error: ccxt_async.BaseError = exc
            except _PARSE_ERRORS as exc:
                raise self._unreadable(op, exc) from None
            await self._wait_or_raise(op, error, budget)

    async def _wait_or_raise(
        self, op: str, error: ccxt_async.BaseError, budget: RetryBudget, what: str = ""
    ) -> None:
        """Sleep before the next try of a passing fault; raise anything else, or a fault past
        the budget, as our error. Called outside the `except` block, so the raw ccxt error
        (its URL, its signature) is not chained to what the caller sees."""
        text = self._scrub(str(error))
        cause = _scrubbed_copy(error, text)
        subject = f"{op} {what}".rstrip()
        fault = _fault_of(error)
        if fault is None:
            raise VenueRejected(
                self.name, f"{subject} refused: {type(error).__name__}: {text}", _code_of(error)
            ) from cause
        retry_after = self._retry_after() if fault is Fault.RATE_LIMITED else None
        delay = budget.next_delay(fault, retry_after)
        if delay is None:
            raise VenueUnavailable(
                self.name,
                f"{subject} gave up after {budget.retries + 1} tries in {budget.elapsed:.1f}s, "
                f"last: {fault.value}: {text}",
            ) from cause
        logger.warning(
            "%s: %s: %s, retry %d in %.2fs: %s",
            self.name,
            subject,
            fault.value,
            budget.retries,
            delay,
            text,
        )
        await asyncio.sleep(delay)

    def _unreadable(self, op: str, error: Exception) -> MalformedVenueAnswer:
        """ccxt failed to read the venue's answer: name the raw field that is wrong if we can."""
        answer: object = None
        with contextlib.suppress(TypeError, ValueError):
            answer = json.loads(getattr(self._exchange, "last_http_response", None) or "")
        field, reason = _bad_raw_field(answer) or (op, f"{type(error).__name__}: {error}")
        return MalformedVenueAnswer(self.name, field, self._scrub(reason))

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

    def _scrub(self, text: str) -> str:
        text = scrub(text, self._secrets)
        return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."

    def _check_open(self) -> None:
        if self._state is VenueState.CLOSED:
            raise VenueError(self.name, "the venue is closed")


def _fault_of(error: BaseException) -> Fault | None:
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


_PARSE_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, ArithmeticError)
# Binance's numeric fields, by the name our records give them.
_RAW_NUMBERS: Final = {
    "origQty": "quantity",
    "executedQty": "filled",
    "price": "price",
    "stopPrice": "stop_price",
    "cummulativeQuoteQty": "cummulativeQuoteQty",
    "qty": "quantity",
    "commission": "fee",
    "free": "free",
    "locked": "locked",
}


def _bad_raw_field(answer: object) -> tuple[str, str] | None:
    """The first raw numeric field of a Binance answer that is not a number, if any."""
    items = answer if isinstance(answer, list) else [answer]
    for item in items:
        if not isinstance(item, Mapping):
            continue
        for key, field in _RAW_NUMBERS.items():
            value = item.get(key)
            if value is None:
                continue
            try:
                Decimal(str(value))
            except InvalidOperation:
                return field, f"{key} is not a number: {str(value)[:40]!r}"
    return None


def _is_duplicate(error: BaseException) -> bool:
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


def _order_params(venue_order_id: str | None, client_order_id: str | None) -> dict[str, str]:
    if venue_order_id is None and client_order_id is None:
        raise InvalidValue("venue_order_id", "give venue_order_id or client_order_id")
    return {} if client_order_id is None else {"clientOrderId": client_order_id}


def _trade_number(trade_id: str | None) -> int | None:
    if trade_id is None:
        return None
    try:
        return int(trade_id)
    except ValueError:
        raise InvalidValue(
            "after_trade_id", f"must be a numeric trade id, got {trade_id!r}"
        ) from None


def _sort_key(trade_id: str) -> tuple[int, str]:
    return (int(trade_id), "") if trade_id.isdigit() else (0, trade_id)


# -- reading ccxt's answers --------------------------------------------------------------

_STATUSES: Final[Mapping[str, VenueOrderStatus]] = {
    "open": "open",
    "canceling": "open",  # the cancel has not landed yet
    "closed": "filled",
    "canceled": "cancelled",
    "cancelled": "cancelled",
    "rejected": "rejected",
    "expired": "expired",
}
_BINANCE_TYPES: Final[Mapping[str, OrderType]] = {
    "MARKET": "market",
    "LIMIT": "limit",
    "LIMIT_MAKER": "limit",
    "STOP_LOSS": "stop",
    "TAKE_PROFIT": "stop",
    "STOP_LOSS_LIMIT": "stop_limit",
    "TAKE_PROFIT_LIMIT": "stop_limit",
}
_TIME_IN_FORCE: Final = ("GTC", "IOC", "FOK")


class AnswerReader:
    """Turns ccxt's dicts into our records, preferring the venue's raw strings in `info`.

    Where the raw string is missing (an exchange other than Binance), ccxt's unified value is
    used: a float there is read through its shortest repr, which gives back the decimal the
    venue sent whenever that had at most 15 significant digits. Anything unreadable raises
    MalformedVenueAnswer naming the field.
    """

    def __init__(self, venue: str) -> None:
        self.venue = venue

    def malformed(self, field: str, message: str) -> MalformedVenueAnswer:
        return MalformedVenueAnswer(self.venue, field, message)

    def mapping(self, raw: object, what: str) -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            raise self.malformed(what, f"expected an object, got {type(raw).__name__}")
        return raw

    def listing(self, raw: object, what: str) -> Sequence[Any]:
        if not isinstance(raw, list | tuple):
            raise self.malformed(what, f"expected a list, got {type(raw).__name__}")
        return raw

    def decimal(self, field: str, value: object) -> Decimal | None:
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise self.malformed(field, f"expected a number, got {type(value).__name__}")
        try:
            number = Decimal(repr(value) if isinstance(value, float) else value)
        except InvalidOperation:
            raise self.malformed(field, f"not a number: {str(value)[:40]!r}") from None
        if not number.is_finite():
            raise self.malformed(field, f"not a finite number: {value!r}")
        return number

    def required_decimal(self, field: str, *values: object) -> Decimal:
        number = self.first_decimal(field, *values)
        if number is None:
            raise self.malformed(field, "missing")
        return number

    def first_decimal(self, field: str, *values: object) -> Decimal | None:
        for value in values:
            number = self.decimal(field, value)
            if number is not None:
                return number
        return None

    def text(self, field: str, *values: object) -> str:
        for value in values:
            if isinstance(value, str) and value:
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
        raise self.malformed(field, "missing")

    def moment(self, field: str, *values: object) -> datetime | None:
        for value in values:
            if value is None:
                continue
            number = self.decimal(field, value)
            if number is None:
                continue
            try:
                return datetime.fromtimestamp(float(number) / 1000, tz=UTC)
            except (OverflowError, ValueError, OSError):
                raise self.malformed(field, f"not a time in milliseconds: {value!r}") from None
        return None

    def side(self, raw: Mapping[str, Any], info: Mapping[str, Any]) -> OrderSide:
        side = raw.get("side") or str(info.get("side", "")).lower()
        if side == "buy" or side == "sell":
            return "buy" if side == "buy" else "sell"
        raise self.malformed("side", f"expected buy or sell, got {side!r}")

    def order(self, answer: object) -> VenueOrder:
        raw = self.mapping(answer, "order")
        info = self.mapping(raw.get("info") or {}, "order info")
        order_type = self._order_type(raw, info)
        quantity = self.required_decimal("quantity", info.get("origQty"), raw.get("amount"))
        filled = self.required_decimal("filled", info.get("executedQty"), raw.get("filled"))
        status = _STATUSES.get(str(raw.get("status")))
        if status is None:
            raise self.malformed("status", f"unknown order status {raw.get('status')!r}")
        if status == "open" and filled > 0:
            status = "partially_filled"
        limit_price = None
        if order_type in ("limit", "stop_limit"):
            limit_price = self.required_decimal("price", info.get("price"), raw.get("price"))
        stop_price = self.first_decimal(
            "stop_price", info.get("stopPrice"), raw.get("triggerPrice"), raw.get("stopPrice")
        )
        tif = info.get("timeInForce") or raw.get("timeInForce")
        return VenueOrder(
            venue_order_id=self.text("id", raw.get("id"), info.get("orderId")),
            # A cancel's answer names the cancel request in clientOrderId; ours is the original.
            client_order_id=_optional_text(
                info.get("origClientOrderId"), raw.get("clientOrderId"), info.get("clientOrderId")
            ),
            symbol=self.text("symbol", raw.get("symbol")),
            side=self.side(raw, info),
            type=order_type,
            status=status,
            quantity=quantity,
            filled_quantity=filled,
            average_price=self._average(raw, info, filled),
            limit_price=limit_price,
            stop_price=stop_price or None,
            time_in_force=tif if tif in _TIME_IN_FORCE else None,
            updated_at=self.moment(
                "updated_at",
                info.get("updateTime"),
                info.get("transactTime"),
                raw.get("lastUpdateTimestamp"),
                raw.get("timestamp"),
            ),
        )

    def _order_type(self, raw: Mapping[str, Any], info: Mapping[str, Any]) -> OrderType:
        venue_type = info.get("type")
        if isinstance(venue_type, str) and venue_type in _BINANCE_TYPES:
            return _BINANCE_TYPES[venue_type]
        unified = raw.get("type")
        triggered = raw.get("triggerPrice") is not None
        if unified == "market":
            return "stop" if triggered else "market"
        if unified == "limit":
            return "stop_limit" if triggered else "limit"
        raise self.malformed("type", f"unknown order type {venue_type or unified!r}")

    def _average(
        self, raw: Mapping[str, Any], info: Mapping[str, Any], filled: Decimal
    ) -> Decimal | None:
        if filled <= 0:
            return None
        quote = self.decimal("cummulativeQuoteQty", info.get("cummulativeQuoteQty"))
        if quote is not None and quote >= 0:
            return quote / filled
        return self.decimal("average", raw.get("average"))

    def trade(self, answer: object) -> VenueTrade:
        raw = self.mapping(answer, "trade")
        info = self.mapping(raw.get("info") or {}, "trade info")
        fee: Mapping[str, Any] = raw["fee"] if isinstance(raw.get("fee"), Mapping) else {}
        executed_at = self.moment("executed_at", info.get("time"), raw.get("timestamp"))
        if executed_at is None:
            raise self.malformed("executed_at", "missing")
        return VenueTrade(
            trade_id=self.text("trade_id", info.get("id"), raw.get("id")),
            venue_order_id=self.text("order", info.get("orderId"), raw.get("order")),
            symbol=self.text("symbol", raw.get("symbol")),
            side=self.side(raw, {"side": "buy" if info.get("isBuyer") else "sell"} if info else {}),
            quantity=self.required_decimal("quantity", info.get("qty"), raw.get("amount")),
            price=self.required_decimal("price", info.get("price"), raw.get("price")),
            fee=self.first_decimal("fee", info.get("commission"), fee.get("cost")) or Decimal(0),
            fee_asset=_optional_text(info.get("commissionAsset"), fee.get("currency")),
            executed_at=executed_at,
        )

    def balances(self, answer: object) -> dict[str, AssetBalance]:
        raw = self.mapping(answer, "balance")
        info = self.mapping(raw.get("info") or {}, "balance info")
        if "balances" in info:
            found = {}
            for item in self.listing(info["balances"], "balances"):
                entry = self.mapping(item, "balances")
                asset = self.text("asset", entry.get("asset"))
                found[asset] = AssetBalance(
                    asset,
                    self.required_decimal(f"{asset}.free", entry.get("free")),
                    self.required_decimal(f"{asset}.locked", entry.get("locked")),
                )
            return found
        free = self.mapping(raw.get("free") or {}, "free")
        used = self.mapping(raw.get("used") or {}, "used")
        return {
            asset: AssetBalance(
                asset,
                self.required_decimal(f"{asset}.free", free.get(asset)),
                self.first_decimal(f"{asset}.used", used.get(asset)) or Decimal(0),
            )
            for asset in free
        }

    def kline(self, row: object, now_ms: int) -> Bar:
        """A Binance kline: [open time, open, high, low, close, volume, close time, ...]."""
        values = self.listing(row, "kline")
        if len(values) < 7:
            raise self.malformed("kline", f"expected at least 7 values, got {len(values)}")
        close_ms = self.required_decimal("kline close time", values[6])
        return self._bar(values, closed=close_ms < now_ms)

    def ohlcv(self, row: object, timeframe_seconds: int, now_ms: int) -> Bar:
        """ccxt's [timestamp, open, high, low, close, volume]."""
        values = self.listing(row, "ohlcv")
        if len(values) < 6:
            raise self.malformed("ohlcv", f"expected 6 values, got {len(values)}")
        opened = self.required_decimal("ohlcv time", values[0])
        return self._bar(values, closed=opened + timeframe_seconds * 1000 <= now_ms)

    def _bar(self, values: Sequence[Any], *, closed: bool) -> Bar:
        opened_at = self.moment("opened_at", values[0])
        if opened_at is None:
            raise self.malformed("opened_at", "missing")
        names = ("open", "high", "low", "close", "volume")
        pairs = zip(names, values[1:6], strict=True)
        o, h, low, c, v = (self.required_decimal(name, value) for name, value in pairs)
        return Bar(opened_at, o, h, low, c, v, closed)


def _optional_text(*values: object) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None
