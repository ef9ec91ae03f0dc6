"""Binance spot's REST API over a `PaperExchange`: aiohttp handlers, signatures, and Binance's
error shape `{"code": ..., "msg": ...}` for every refusal (parameters in `binance_params`,
JSON shapes in `binance_json`).

A request is parsed and, with keys configured, authenticated completely before the exchange
is touched, so a malformed, oversized or badly signed request never changes anything.

Where it differs from Binance, on purpose: klines accept any interval and always give the
data's own bars; resting orders fill whole unless --max-volume-share caps each bar's fills;
nothing is `locked` for open orders (each fill, or each portion of one, re-checks the broker's
funds rule and an order it cannot pay for then EXPIRES, keeping what filled); the base balance
may go negative, a short as the backtest models it, which a real spot account cannot hold;
unknown parameters are ignored; without keys configured any key and signature pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from quantflow_async.live.paper import rejections
from quantflow_async.live.paper.binance_auth import authenticate, request_params
from quantflow_async.live.paper.binance_json import (
    account_json,
    amount_text,
    kline_json,
    order_fields,
    order_json,
    price_text,
    symbol_json,
    trade_json,
)
from quantflow_async.live.paper.binance_params import Params
from quantflow_async.live.paper.exchange import OrderRequest, PaperExchange
from quantflow_async.live.paper.matching import LIMIT_TYPES, ORDER_TYPES, TRIGGERED_TYPES, Side
from quantflow_async.live.paper.rejections import Rejected
from quantflow_async.live.paper.rows import OrderRow

logger = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BinanceApi:
    """The routes of one paper exchange; `application()` is what the server runs."""

    def __init__(self, exchange: PaperExchange) -> None:
        self.exchange = exchange
        self.config = exchange.config

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._errors])
        public = {
            "/api/v3/ping": self.ping,
            "/api/v3/time": self.server_time,
            "/api/v3/exchangeInfo": self.exchange_info,
            "/api/v3/klines": self.klines,
        }
        for path, handler in public.items():
            app.router.add_get(path, self._public(handler))
        signed: list[tuple[str, str, Callable[[Params], Any]]] = [
            ("POST", "/api/v3/order", self.new_order),
            ("GET", "/api/v3/order", self.query_order),
            ("DELETE", "/api/v3/order", self.cancel_order),
            ("GET", "/api/v3/openOrders", self.open_orders),
            ("DELETE", "/api/v3/openOrders", self.cancel_open_orders),
            ("GET", "/api/v3/allOrders", self.all_orders),
            ("GET", "/api/v3/myTrades", self.my_trades),
            ("GET", "/api/v3/account", self.account),
        ]
        for method, path, action in signed:
            app.router.add_route(method, path, self._signed(action))
        return app

    # -- request handling -------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Rejected as exc:
            return _error(exc.code, exc.msg, exc.status)
        except web.HTTPRequestEntityTooLarge:
            return _error(-1101, f"Request body is larger than {MAX_BODY_BYTES} bytes.", 400)
        except web.HTTPNotFound:
            return _error(-1000, f"Unknown path {request.path}.", 404)
        except web.HTTPMethodNotAllowed:
            return _error(-1000, f"Method {request.method} is not allowed on {request.path}.", 405)
        except web.HTTPException:
            raise
        except Exception:
            logger.exception("paper exchange: %s %s failed", request.method, request.path)
            return _error(-1000, "An unknown error occurred while processing the request.", 500)

    def _public(self, action: Callable[[Params], Any]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            params, _ = await request_params(request)
            self.exchange.catch_up()
            return web.json_response(action(params))

        return handle

    def _signed(self, action: Callable[[Params], Any]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            params, signed_text = await request_params(request)
            authenticate(self.config, request, params, signed_text)
            self.exchange.catch_up()
            return web.json_response(action(params))

        return handle

    def _symbol(self, params: Params, *, required: bool = True) -> None:
        symbol = params.required("symbol") if required else params.text("symbol")
        if symbol is not None and symbol != self.config.symbol:
            raise Rejected(-1121, "Invalid symbol.")

    # -- public endpoints -------------------------------------------------------------------

    def ping(self, params: Params) -> dict[str, Any]:
        return {}

    def server_time(self, params: Params) -> dict[str, Any]:
        return {"serverTime": time.time_ns() // 1_000_000}

    def exchange_info(self, params: Params) -> dict[str, Any]:
        self._symbol(params, required=False)
        symbols = params.text("symbols")
        if symbols is not None and f'"{self.config.symbol}"' not in symbols:
            raise Rejected(-1121, "Invalid symbol.")
        return {
            "timezone": "UTC",
            "serverTime": time.time_ns() // 1_000_000,
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [
                symbol_json(
                    self.config, self.exchange.market.tick_size, trading=not self.exchange.is_closed
                )
            ],
        }

    def klines(self, params: Params) -> list[list[Any]]:
        self._symbol(params)
        params.required("interval")  # any interval: the data's own spacing is what comes back
        rows = self.exchange.klines(
            start_ms=params.integer("startTime"),
            end_ms=params.integer("endTime"),
            limit=params.limit(),
        )
        return [kline_json(row) for row in rows]

    # -- signed endpoints -------------------------------------------------------------------

    def new_order(self, params: Params) -> dict[str, Any]:
        self._symbol(params)
        side = params.required("side")
        if side not in ("BUY", "SELL"):
            raise Rejected(-1117, "Invalid side.")
        order_type = params.required("type")
        if order_type not in ORDER_TYPES:
            raise Rejected(-1116, "Invalid orderType.")
        response_type = params.text("newOrderRespType") or "FULL"
        if response_type not in ("ACK", "RESULT", "FULL"):
            raise Rejected(
                -1100,
                "Illegal characters found in parameter 'newOrderRespType'; "
                "legal range is 'ACK, RESULT, FULL'.",
            )
        request = self._order_request(params, _side(side), order_type)
        order, trades = self.exchange.place(request)
        symbol, quote = self.config.symbol, self.config.quote
        answer: dict[str, Any] = {
            "symbol": symbol,
            "orderId": order.id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": order.time_ms,
        }
        if response_type == "ACK":
            return answer
        answer.update(order_fields(order, symbol))
        answer.update(
            {
                "origQuoteOrderQty": "0.00000000",
                "workingTime": order.time_ms,
                "selfTradePreventionMode": "NONE",
            }
        )
        if response_type == "FULL":
            answer["fills"] = [
                {
                    "price": price_text(trade.price),
                    "qty": amount_text(trade.qty),
                    "commission": amount_text(trade.commission),
                    "commissionAsset": quote,
                    "tradeId": trade.id,
                }
                for trade in trades
            ]
        return answer

    def _order_request(self, params: Params, side: Side, order_type: str) -> OrderRequest:
        """The order's fields, with Binance's mandatory parameters per type checked."""
        time_in_force = params.text("timeInForce")
        if time_in_force is not None and time_in_force not in ("GTC", "IOC", "FOK"):
            raise Rejected(-1115, "Invalid timeInForce.")
        quantity = params.decimal("quantity")
        quote_quantity = params.decimal("quoteOrderQty")
        price = params.decimal("price")
        stop_price = params.decimal("stopPrice")
        if order_type in LIMIT_TYPES and price is None:
            raise rejections.missing("price")
        if order_type in TRIGGERED_TYPES and stop_price is None:
            raise rejections.missing("stopPrice")
        if (
            order_type in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
            and time_in_force is None
        ):
            raise rejections.missing("timeInForce")
        if quantity is None and not (order_type == "MARKET" and quote_quantity is not None):
            raise rejections.missing("quantity")
        return OrderRequest(
            client_order_id=params.client_id("newClientOrderId"),
            side=side,
            type=order_type,
            time_in_force=time_in_force if order_type in LIMIT_TYPES else None,
            quantity=quantity,
            quote_quantity=quote_quantity,
            price=price if order_type in LIMIT_TYPES else None,
            stop_price=stop_price if order_type in TRIGGERED_TYPES else None,
        )

    def _order_key(self, params: Params) -> tuple[int | None, str | None]:
        order_id = params.integer("orderId")
        client_id = params.client_id("origClientOrderId")
        if order_id is None and client_id is None:
            raise Rejected(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        return order_id, client_id

    def query_order(self, params: Params) -> dict[str, Any]:
        self._symbol(params)
        order_id, client_id = self._order_key(params)
        return order_json(
            self.exchange.order(order_id=order_id, client_order_id=client_id), self.config.symbol
        )

    def cancel_order(self, params: Params) -> dict[str, Any]:
        self._symbol(params)
        order_id, client_id = self._order_key(params)
        cancel_id = params.client_id("newClientOrderId")
        order = self.exchange.cancel(order_id=order_id, client_order_id=client_id)
        return self._cancelled(order, cancel_id)

    def _cancelled(self, order: OrderRow, cancel_id: str | None) -> dict[str, Any]:
        # Binance's cancel answer: clientOrderId is the cancel's own id, the order's is
        # origClientOrderId
        return {
            **order_fields(order, self.config.symbol),
            "origClientOrderId": order.client_order_id,
            "clientOrderId": cancel_id or f"cancel-{order.id}",
            "transactTime": order.update_ms,
            "selfTradePreventionMode": "NONE",
        }

    def cancel_open_orders(self, params: Params) -> list[dict[str, Any]]:
        self._symbol(params)
        open_orders = self.exchange.state.open_orders()
        if not open_orders:
            raise rejections.unknown_order(cancelling=True)
        return [
            self._cancelled(self.exchange.cancel(order_id=order.id, client_order_id=None), None)
            for order in open_orders
        ]

    def open_orders(self, params: Params) -> list[dict[str, Any]]:
        self._symbol(params, required=False)
        return [
            order_json(order, self.config.symbol) for order in self.exchange.state.open_orders()
        ]

    def all_orders(self, params: Params) -> list[dict[str, Any]]:
        self._symbol(params)
        from_id = params.integer("orderId")
        start = params.integer("startTime")
        orders = self.exchange.state.orders(
            from_id=from_id,
            start_ms=start,
            end_ms=params.integer("endTime"),
            limit=params.limit(),
            latest=from_id is None and start is None,
        )
        return [order_json(order, self.config.symbol) for order in orders]

    def my_trades(self, params: Params) -> list[dict[str, Any]]:
        self._symbol(params)
        from_id = params.integer("fromId")
        start = params.integer("startTime")
        trades = self.exchange.state.trades(
            order_id=params.integer("orderId"),
            from_id=from_id,
            start_ms=start,
            end_ms=params.integer("endTime"),
            limit=params.limit(),
            latest=from_id is None and start is None,
        )
        return [trade_json(trade, self.config.symbol, self.config.quote) for trade in trades]

    def account(self, params: Params) -> dict[str, Any]:
        return account_json(
            self.config,
            self.exchange.state.balances(),
            update_ms=self.exchange.data_time_ms(),
            uid=self.exchange.state.uid,
        )


def _side(text: str) -> Side:
    return "BUY" if text == "BUY" else "SELL"


def _error(code: int, msg: str, status: int) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)
