"""Binance spot's JSON shapes for the paper exchange's records: orders, trades, klines, the
symbol's entry in exchangeInfo and the account, with amounts written as Binance writes them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from quantflow_async.live.paper.config import PaperExchangeConfig
from quantflow_async.live.paper.exchange import KlineRow
from quantflow_async.live.paper.matching import ORDER_TYPES, TRIGGERED_TYPES
from quantflow_async.live.paper.rows import OrderRow, TradeRow

EIGHT_PLACES: Final = Decimal("0.00000001")


def amount_text(value: Decimal) -> str:
    """A quantity or balance as Binance writes it: at least eight decimals."""
    if value == value.quantize(EIGHT_PLACES):
        return format(value.quantize(EIGHT_PLACES), "f")
    return format(value, "f")


def price_text(value: Decimal | None) -> str:
    """A price exactly as the replayed data has it (Decimal(repr(float)))."""
    return "0.00000000" if value is None else format(value, "f")


def order_fields(order: OrderRow, symbol: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "symbol": symbol,
        "orderId": order.id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": price_text(order.price),
        "origQty": amount_text(order.quantity),
        "executedQty": amount_text(order.executed_qty),
        "cummulativeQuoteQty": amount_text(order.cum_quote),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
    }
    if order.stop_price is not None:
        fields["stopPrice"] = price_text(order.stop_price)
    return fields


def order_json(order: OrderRow, symbol: str) -> dict[str, Any]:
    """GET /api/v3/order's shape."""
    return {
        **order_fields(order, symbol),
        "stopPrice": price_text(order.stop_price),
        "icebergQty": "0.00000000",
        "time": order.time_ms,
        "updateTime": order.update_ms,
        "isWorking": order.type not in TRIGGERED_TYPES or order.triggered,
        "workingTime": order.time_ms,
        "origQuoteOrderQty": "0.00000000",
        "selfTradePreventionMode": "NONE",
    }


def trade_json(trade: TradeRow, symbol: str, quote: str) -> dict[str, Any]:
    """GET /api/v3/myTrades's shape."""
    return {
        "symbol": symbol,
        "id": trade.id,
        "orderId": trade.order_id,
        "orderListId": -1,
        "price": price_text(trade.price),
        "qty": amount_text(trade.qty),
        "quoteQty": amount_text(trade.quote_qty),
        "commission": amount_text(trade.commission),
        "commissionAsset": quote,
        "time": trade.time_ms,
        "isBuyer": trade.side == "BUY",
        "isMaker": trade.is_maker,
        "isBestMatch": True,
    }


def kline_json(row: KlineRow) -> list[Any]:
    bar = row.bar
    volume = bar.volume or Decimal(0)
    quote_volume = volume * bar.close
    return [
        bar.time_ms,
        price_text(bar.open),
        price_text(bar.high),
        price_text(bar.low),
        price_text(bar.close),
        amount_text(volume),
        row.close_time_ms,
        amount_text(quote_volume),
        0,
        "0.00000000",
        "0.00000000",
        "0",
    ]


def symbol_json(
    config: PaperExchangeConfig, tick_size: Decimal, *, trading: bool
) -> dict[str, Any]:
    """The symbol's entry in exchangeInfo; BREAK once the data is over and no bar forms."""
    tick = format(tick_size, "f")
    step = format(config.step_size, "f")
    return {
        "symbol": config.symbol,
        "status": "TRADING" if trading else "BREAK",
        "baseAsset": config.base,
        "baseAssetPrecision": 8,
        "quoteAsset": config.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": config.commission_precision,
        "quoteCommissionPrecision": config.commission_precision,
        "orderTypes": list(ORDER_TYPES),
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000000",
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": step,
                "maxQty": "9000000000",
                "stepSize": step,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "0.00000001",
                "applyMinToMarket": True,
                "maxNotional": "9000000000000000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 0,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def account_json(
    config: PaperExchangeConfig, balances: dict[str, Decimal], *, update_ms: int, uid: int
) -> dict[str, Any]:
    """GET /api/v3/account's shape; `uid` is the state file's own account id."""
    rate = amount_text(config.commission)
    bips = int(config.commission * 10_000)
    return {
        "makerCommission": bips,
        "takerCommission": bips,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": rate,
            "taker": rate,
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": update_ms,
        "accountType": "SPOT",
        # a negative base balance is a short as the backtest models it; spot cannot be short
        "balances": [
            {"asset": asset, "free": amount_text(amount), "locked": "0.00000000"}
            for asset, amount in balances.items()
        ],
        "permissions": ["SPOT"],
        "uid": uid,
    }
