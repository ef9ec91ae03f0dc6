"""Reading a venue's answers: ccxt's dicts (and Binance's raw strings in their `info`) turned
into the records of `live.venue`, exact Decimals throughout, and `MalformedVenueAnswer` naming
the field of an answer that cannot be read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from quantflow_async.errors import MalformedVenueAnswer
from quantflow_async.live.venue import (
    AssetBalance,
    Bar,
    OrderSide,
    OrderType,
    VenueOrder,
    VenueOrderStatus,
    VenueTrade,
)

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


def bad_raw_field(answer: object) -> tuple[str, str] | None:
    """The first raw numeric field of a Binance answer that is not a number, if any, as
    (field, reason): for an answer ccxt itself failed to read."""
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


class AnswerReader:
    """Turns ccxt's dicts into our records, preferring the venue's raw strings in `info`.

    Where the raw string is missing (an exchange other than Binance), ccxt's unified value is
    used: a float there is read through its shortest repr, which gives back the decimal the
    venue sent whenever that had at most 15 significant digits. Anything unreadable raises
    MalformedVenueAnswer naming the field.
    """

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.symbols: dict[str, str] = {}
        """ccxt's unified symbol -> the name the caller gave the market ("BTC/USDT" -> "BTCUSDT"):
        records name a market as the caller does."""

    def symbol(self, raw: Mapping[str, Any]) -> str:
        unified = self.text("symbol", raw.get("symbol"))
        return self.symbols.get(unified, unified)

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
            symbol=self.symbol(raw),
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

    def order_about(
        self, answer: object, venue_order_id: str | None, client_order_id: str | None
    ) -> VenueOrder:
        """`answer` read as the order asked about by these ids (None: not asked by it), or
        MalformedVenueAnswer naming the id when it is about another order."""
        order = self.order(answer)
        for field, asked, answered in (
            ("venue_order_id", venue_order_id, order.venue_order_id),
            ("client_order_id", client_order_id, order.client_order_id),
        ):
            if asked is not None and answered != asked:
                raise self.malformed(
                    field, f"asked about {asked!r}, the answer is about {answered!r}"
                )
        return order

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
            symbol=self.symbol(raw),
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
