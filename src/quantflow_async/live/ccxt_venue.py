"""`CcxtVenue`: the `Venue` protocol over a `ccxt.async_support` exchange (Binance shapes first).

Answers are read by `venue_answers`, ccxt's errors retried or translated by `ccxt_calls`; this
module decides what each call asks the venue, refuses an order ccxt would change on its way,
and re-sends an order only after asking the venue for its client id.
"""

from __future__ import annotations

import enum
import logging
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from quantflow_async.extras import missing_extra

try:
    import ccxt.async_support as ccxt_async
except ImportError as exc:  # ccxt, or a package of its own such as aiohttp
    raise missing_extra(exc.name or "ccxt", extra="live", purpose="CcxtVenue") from exc

from quantflow_async.errors import VenueError, VenueRejected
from quantflow_async.live.ccxt_calls import CcxtCalls, is_duplicate
from quantflow_async.live.ccxt_client import binance_client
from quantflow_async.live.ccxt_precision import check_precision
from quantflow_async.live.ccxt_requests import (
    TRADES_PAGE,
    create_raw_order,
    fetch_raw_order,
    order_params,
    raw_klines,
    trades_page,
)
from quantflow_async.live.credentials import ScrubbingFilter, VenueCredentials
from quantflow_async.live.trade_selection import chosen_trades, trade_number
from quantflow_async.live.venue import AssetBalance, Bar, NewOrder, VenueOrder, VenueTrade
from quantflow_async.live.venue_answers import AnswerReader
from quantflow_async.live.venue_retry import RetryBudget, RetryPolicy


class VenueState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class CcxtVenue:
    """A `Venue` over a ccxt async exchange: `CcxtVenue.connect(url, credentials)` for Binance
    or the paper exchange at `url`, or `CcxtVenue(exchange)` for a ccxt exchange a caller
    made that takes Binance spot's shapes (clientOrderId; numeric trade ids paged by fromId),
    which the venue closes on `aclose()`.

    Every call retries connection faults, 5xx answers, timeouts and rate limits under
    `policy`, then raises VenueUnavailable. `create_order` refuses (VenueRejected, nothing
    sent) a quantity or price the market's precision cannot hold exactly, since ccxt would
    truncate or round it unasked. It is re-sent only with the same client order id and only
    after the venue said it has no such order; an order found under that id must be the one
    asked for. An answer about another order is MalformedVenueAnswer.
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
        self._calls = CcxtCalls(exchange, self.name, self._secrets)
        self._sent: set[str] = set()
        self._named: set[str] = set()
        self._filter = ScrubbingFilter(self._secrets)
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
        await self._name(order.symbol)
        check_precision(self._exchange, self.name, order)
        cid = order.client_order_id
        budget = RetryBudget(self.policy)
        if cid in self._sent:
            found = await self._order_by_client_id(order, budget.child())
            if found is not None:
                return found
        while True:
            self._sent.add(cid)
            answer = await self._calls.attempt(
                "create_order", lambda: create_raw_order(self._exchange, order)
            )
            if not isinstance(answer, ccxt_async.BaseError):
                return self._read.order_about(answer, None, cid)
            error = answer
            if is_duplicate(error):
                # Our own id is already there: an earlier send arrived after all.
                found = await self._order_by_client_id(order, budget.child())
                if found is not None:
                    return found
            await self._calls.wait_or_raise("create_order", error, budget, f"client id {cid!r}")
            found = await self._order_by_client_id(order, budget.child())
            if found is not None:
                return found

    async def cancel_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder:
        self._check_open()
        await self._name(symbol)
        params = order_params(venue_order_id, client_order_id)
        budget = RetryBudget(self.policy)
        while True:
            answer = await self._calls.attempt(
                "cancel_order",
                lambda: self._exchange.cancel_order(venue_order_id or "", symbol, params),
            )
            if not isinstance(answer, ccxt_async.BaseError):
                return self._read.order_about(answer, venue_order_id, client_order_id)
            error = answer
            if isinstance(error, ccxt_async.OrderNotFound):
                # After a retry the first cancel may have landed; on a first try the order
                # may be filled already: either way the order itself is the answer.
                found = await self._calls.call(
                    "fetch_order",
                    lambda: fetch_raw_order(
                        self._exchange, symbol, venue_order_id, client_order_id
                    ),
                    budget.child(),
                )
                if found is not None:
                    return self._read.order_about(found, venue_order_id, client_order_id)
            what = f"order {venue_order_id or client_order_id!r}"
            await self._calls.wait_or_raise("cancel_order", error, budget, what)

    async def fetch_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> VenueOrder | None:
        self._check_open()
        order_params(venue_order_id, client_order_id)
        await self._name(symbol)
        raw = await self._calls.call(
            "fetch_order",
            lambda: fetch_raw_order(self._exchange, symbol, venue_order_id, client_order_id),
            RetryBudget(self.policy),
        )
        return None if raw is None else self._read.order_about(raw, venue_order_id, client_order_id)

    async def fetch_open_orders(self, symbol: str) -> Sequence[VenueOrder]:
        self._check_open()
        await self._name(symbol)
        raw = await self._calls.call(
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
        await self._name(symbol)
        after = trade_number(after_trade_id)
        since_ms = None if since is None else round(since.timestamp() * 1000)
        from_id: int | None = 0 if since_ms is None else None
        if after is not None:
            from_id = after + 1
        trades: dict[str, VenueTrade] = {}
        while True:
            raw = await self._calls.call(
                "fetch_my_trades",
                trades_page(self._exchange, symbol, since_ms, from_id),
                RetryBudget(self.policy),
            )
            page = [self._read.trade(item) for item in self._read.listing(raw, "trades")]
            fresh = [t for t in page if t.trade_id not in trades]
            trades.update((t.trade_id, t) for t in fresh)
            if len(page) < TRADES_PAGE or not fresh:
                break
            from_id = max(trade_number(t.trade_id) or 0 for t in page) + 1
        return chosen_trades(trades.values(), since, after)

    async def account_id(self) -> str | None:
        """The account's id as the venue gives it (Binance's `uid`), or None where it gives none.

        The paper exchange makes one with its state file, so two paper accounts differ.
        """
        self._check_open()
        raw = await self._calls.call(
            "fetch_balance", lambda: self._exchange.fetch_balance(), RetryBudget(self.policy)
        )
        info = raw.get("info") if isinstance(raw, Mapping) else None
        uid = info.get("uid") if isinstance(info, Mapping) else None
        return None if uid is None else str(uid)

    async def fetch_balance(self) -> Mapping[str, AssetBalance]:
        self._check_open()
        raw = await self._calls.call(
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
            rows = await self._calls.call(
                "fetch_ohlcv",
                lambda: raw_klines(self._exchange, symbol, timeframe, since_ms, limit),
                budget,
            )
            now_ms = self._exchange.milliseconds()
            listing = self._read.listing(rows, "klines")
            return [self._read.kline(row, now_ms) for row in listing]
        rows = await self._calls.call(
            "fetch_ohlcv",
            lambda: self._exchange.fetch_ohlcv(symbol, timeframe, since_ms, limit),
            budget,
        )
        seconds = self._exchange.parse_timeframe(timeframe)
        now_ms = self._exchange.milliseconds()
        listing = self._read.listing(rows, "ohlcv")
        return [self._read.ohlcv(row, seconds, now_ms) for row in listing]

    # -- the ccxt calls ----------------------------------------------------------------

    async def _name(self, symbol: str) -> None:
        """Remember the caller's name for `symbol`'s market, so records name it the same way."""
        if symbol in self._named:
            return
        if not getattr(self._exchange, "markets", None):
            await self._calls.call(
                "load_markets", lambda: self._exchange.load_markets(), RetryBudget(self.policy)
            )
        try:
            unified = self._exchange.market(symbol)["symbol"]
        except ccxt_async.BadSymbol:
            raise VenueRejected(self.name, f"no market {symbol!r} on this venue") from None
        self._read.symbols[unified] = symbol
        self._named.add(symbol)

    async def _order_by_client_id(self, order: NewOrder, budget: RetryBudget) -> VenueOrder | None:
        """The venue's order under `order`'s client id, None if none; VenueRejected if another."""
        cid = order.client_order_id
        raw = await self._calls.call(
            f"create_order client id {cid!r}: fetch_order",
            lambda: fetch_raw_order(self._exchange, order.symbol, None, cid),
            budget,
        )
        if raw is None:
            return None
        found = self._read.order_about(raw, None, cid)
        theirs = (found.symbol, found.side, found.type, found.quantity)
        if theirs != (order.symbol, order.side, order.type, order.quantity):
            raise VenueRejected(
                self.name,
                f"create_order client id {cid!r} already names another order "
                f"({found.side} {found.quantity} {found.symbol} {found.type}, "
                f"venue id {found.venue_order_id})",
            )
        return found

    def _check_open(self) -> None:
        if self._state is VenueState.CLOSED:
            raise VenueError(self.name, "the venue is closed")
