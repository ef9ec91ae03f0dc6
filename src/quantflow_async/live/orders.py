"""Orders in a live bot: the request, the journal's records, and the state machine of an order.

Every fact about an order is an event; the order is the fold of its events through
`next_state`, which accepts or refuses each one (OrderEventRefused). The moves:

    status now        | event                           | status after
    ------------------+---------------------------------+-----------------------------------
    intended          | submitted                       | submitted
    intended          | rejected (e.g. never_sent)      | rejected
    intended,         | acknowledged                    | open (partially_filled if filled)
      submitted,      |                                 |
      unknown         |                                 |
    open,             | acknowledged                    | unchanged (records the venue id)
      partially_filled|                                 |
      filled          |                                 |
    any non-final     | fill                            | partially_filled, or filled once
                      |                                 | filled_quantity == quantity
    cancelled,        | fill that leaves something      | unchanged (a late fill: the venue
      expired         |   unfilled                      | made it before the cancel)
    submitted, open,  | cancel_requested                | unchanged (a fact, sets nothing)
      part._filled,   |                                 |
      unknown         |                                 |
    submitted, open,  | cancelled, expired              | cancelled, expired
      part._filled,   |                                 |
      unknown         |                                 |
    submitted, open,  | rejected                        | rejected
      unknown         |                                 |
    any non-final     | status "unknown" (mark_unknown) | unknown
    unknown           | status S (reconcile)            | S: open, partially_filled, filled,
                      |                                 | cancelled, rejected or expired
    any               | status S (set_status)           | S when S is the status now, or a
                      |                                 | move of this table

Everything else is refused, and so is a status that disagrees with the fills: filled needs
filled_quantity == quantity, partially_filled 0 < filled_quantity < quantity, open and
rejected nothing filled, cancelled and expired something left. A fill is refused on a filled
or rejected order, on a cancelled or expired one it would complete, past the order's quantity,
or with a quantity or price <= 0; a fill or venue event
whose venue id was already applied is a duplicate (`is_duplicate`): counted, never applied
twice. Final: filled, cancelled, rejected, expired.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Final, TypeAlias

from quantflow_async.errors import InvalidValue, OrderEventRefused
from quantflow_async.live.venue import OrderSide, TimeInForce
from quantflow_async.order_records import (
    EVENT_KINDS,
    FINAL_STATUSES,
    IN_DOUBT_STATUSES,
    OPEN_STATUSES,
    ORDER_STATUSES,
    ORDER_TYPES,
    BalanceSnapshot,
    EventKind,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Position,
)
from quantflow_async.record_maker import record_maker
from quantflow_async.records import SIDES
from quantflow_async.validation import (
    MAX_FRACTION_DIGITS,
    to_choice,
    to_decimal,
    to_json_text,
    to_label,
)

__all__ = [
    "EVENT_KINDS",
    "FINAL_STATUSES",
    "IN_DOUBT_STATUSES",
    "OPEN_STATUSES",
    "ORDER_STATUSES",
    "BalanceSnapshot",
    "Change",
    "EventKind",
    "JournalStats",
    "Order",
    "OrderEvent",
    "OrderRequest",
    "OrderState",
    "OrderStatus",
    "Position",
    "Restored",
    "is_duplicate",
    "next_state",
    "stored_decimal",
]

CLIENT_ORDER_ID: Final = re.compile(r"^[.A-Za-z0-9:/_-]{1,36}$")
"""What Binance (and most venues) take as a client order id."""
TIMES_IN_FORCE: Final = ("GTC", "IOC", "FOK")

# 38 significant digits for the arithmetic, as the columns allow; a wide context for the exact
# sums behind an average (never stored) and to round in.
ARITHMETIC: Final = Context(prec=38, rounding=ROUND_HALF_EVEN)
WIDE: Final = Context(prec=80, rounding=ROUND_HALF_EVEN)
_STORED_STEP: Final = Decimal(1).scaleb(-MAX_FRACTION_DIGITS)
_ZERO: Final = Decimal(0)


def stored_decimal(value: Decimal) -> Decimal:
    """`value` with at most 18 digits after the point (half-even), as the columns keep it."""
    if int(value.as_tuple().exponent) >= -MAX_FRACTION_DIGITS:
        return value
    return value.quantize(_STORED_STEP, context=WIDE)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order a strategy wants placed; checked when made (InvalidValue names the field).

    `client_order_id` None lets the journal make one. A limit price is needed for limit and
    stop_limit orders, a stop price for stop and stop_limit ones.
    """

    symbol: str
    side: OrderSide
    quantity: Decimal
    type: OrderType = "market"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    metadata: Mapping[str, Any] | None = None
    client_order_id: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "symbol", to_label(self.symbol, "symbol", 64))
        set_(self, "side", to_choice(self.side, "side", SIDES))
        set_(self, "type", to_choice(self.type, "type", ORDER_TYPES))
        set_(self, "quantity", _positive(self.quantity, "quantity"))
        for name, needed_by in (("limit_price", "limit"), ("stop_price", "stop")):
            value = getattr(self, name)
            if value is None and needed_by in self.type.split("_"):
                raise InvalidValue(name, f"is needed for a {self.type} order")
            set_(self, name, None if value is None else _positive(value, name))
        if self.time_in_force is not None:
            set_(
                self,
                "time_in_force",
                to_choice(self.time_in_force, "time_in_force", TIMES_IN_FORCE),
            )
        if self.client_order_id is not None:
            check_client_order_id(self.client_order_id)
        if self.metadata is not None:
            # What both backends store and give back equal, as a fill's metadata is checked.
            set_(self, "metadata", json.loads(to_json_text(self.metadata, "metadata")))


def check_client_order_id(value: object) -> str:
    if not isinstance(value, str) or not CLIENT_ORDER_ID.match(value):
        raise InvalidValue(
            "client_order_id",
            f"must be 1 to 36 of the characters A-Z a-z 0-9 . : / _ -, got {value!r}",
        )
    return value


def _positive(value: object, name: str) -> Decimal:
    number = to_decimal(value, name)
    if number <= 0:
        raise InvalidValue(name, f"must be > 0, got {number}")
    return number


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restarted bot must look after, as `OrderJournal.restore()` finds it.

    `open_orders` the venue may hold (submitted, open, partially_filled, unknown), `in_doubt`
    the orders recorded as intended whose sending is not known; `positions` by symbol;
    `cursors` the last venue event id seen, by stream.
    """

    open_orders: tuple[Order, ...]
    in_doubt: tuple[Order, ...]
    positions: Mapping[str, Position]
    cursors: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class JournalStats:
    """Counts since the journal opened: events committed, duplicates skipped, events refused."""

    events_written: int
    duplicates: int
    refused: int


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the state machine knows of an order.

    `notional` is the exact sum of quantity x price over its fills, so the average price is
    computed from it, never from a rounded average. `seen` holds the venue event ids (trade
    ids) already applied.
    """

    client_order_id: str
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal = _ZERO
    notional: Decimal = _ZERO
    venue_order_id: str | None = None
    seen: frozenset[str] = field(default_factory=frozenset)

    @property
    def average_price(self) -> Decimal | None:
        if not self.filled_quantity:
            return None
        return stored_decimal(ARITHMETIC.divide(self.notional, self.filled_quantity))


# Every recorded event makes one: see record_maker.
_make_state: Final = record_maker(OrderState, [f.name for f in fields(OrderState)])


@dataclass(frozen=True, slots=True)
class Change:
    """One event offered to the state machine. `status` is the target of a "status" event;
    `quantity` and `price` are a fill's; `venue_event_id` is the venue's id of the fact (a
    fill's trade id)."""

    kind: EventKind
    status: OrderStatus | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    venue_order_id: str | None = None
    venue_event_id: str | None = None


make_change: Final = record_maker(Change, [f.name for f in fields(Change)])
"""Change(...) with every field given in order, made for each recorded event (record_maker)."""

_NON_FINAL: Final[frozenset[OrderStatus]] = frozenset(ORDER_STATUSES) - FINAL_STATUSES
_REPORTED: Final[frozenset[OrderStatus]] = frozenset(
    {"open", "partially_filled", "filled", "cancelled", "rejected", "expired"}
)
# The statuses each status may move to through the events of the table above.
MOVES: Final[Mapping[OrderStatus, frozenset[OrderStatus]]] = {
    "intended": frozenset({"submitted", "open", "partially_filled", "filled", "rejected"}),
    "submitted": frozenset(
        {"open", "partially_filled", "filled", "cancelled", "rejected", "expired"}
    ),
    "open": frozenset({"partially_filled", "filled", "cancelled", "rejected", "expired"}),
    "partially_filled": frozenset({"partially_filled", "filled", "cancelled", "expired"}),
    "unknown": _REPORTED,
    "filled": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
    "expired": frozenset(),
}
_KEEPS_ON_ACK: Final = frozenset({"open", "partially_filled", "filled"})
# A trade the venue made before it cancelled (or expired) the order may be listed after it.
_LATE_FILLS: Final[frozenset[OrderStatus]] = frozenset({"cancelled", "expired"})
_CANCELLABLE: Final = frozenset({"submitted", "open", "partially_filled", "unknown"})


_Refuse: TypeAlias = Callable[[str], OrderEventRefused]


def is_duplicate(state: OrderState, change: Change) -> bool:
    """True when the venue fact `change` reports was already applied to this order."""
    return change.venue_event_id is not None and change.venue_event_id in state.seen


def next_state(state: OrderState, change: Change) -> OrderState:
    """The order after `change`, or OrderEventRefused naming the order and the reason."""

    def refuse(reason: str) -> OrderEventRefused:
        return OrderEventRefused(state.client_order_id, change.kind, reason)

    venue_order_id = _venue_order_id(state, change, refuse)
    seen = state.seen
    if change.venue_event_id is not None:
        seen = seen | {change.venue_event_id}
    if change.kind == "fill":
        return _filled(state, change, refuse, venue_order_id, seen)
    return _make_state(
        state.client_order_id, _target(state, change, refuse), state.quantity,
        state.filled_quantity, state.notional, venue_order_id, seen,
    )  # fmt: skip


def _venue_order_id(state: OrderState, change: Change, refuse: _Refuse) -> str | None:
    given = change.venue_order_id
    if given is not None and state.venue_order_id not in (None, given):
        raise refuse(f"venue_order_id {given!r} is not the order's {state.venue_order_id!r}")
    return given or state.venue_order_id


def _target(state: OrderState, change: Change, refuse: _Refuse) -> OrderStatus:
    now, kind = state.status, change.kind
    if kind == "submitted":
        target: OrderStatus = "submitted"
        if now != "intended":
            raise refuse(f"the order is {now}; only an intended order is submitted")
    elif kind == "acknowledged":
        if now in _KEEPS_ON_ACK:
            return now
        target = "partially_filled" if state.filled_quantity else "open"
    elif kind == "cancel_requested":
        if now not in _CANCELLABLE:
            raise refuse(f"the order is {now}; there is nothing to cancel")
        return now
    elif kind in ("cancelled", "expired", "rejected"):
        target = kind
    elif kind == "status" and change.status is not None:
        target = change.status
        if target == now or (target == "unknown" and now in _NON_FINAL):
            return _consistent(state, target, refuse)
    else:
        raise refuse(f"{kind!r} is not an event the state machine applies")
    if target not in MOVES[now]:
        raise refuse(f"an order cannot go from {now} to {target}")
    return _consistent(state, target, refuse)


def _consistent(state: OrderState, target: OrderStatus, refuse: _Refuse) -> OrderStatus:
    filled, quantity = state.filled_quantity, state.quantity
    wrong = (
        (target == "filled" and filled != quantity)
        or (target == "partially_filled" and not _ZERO < filled < quantity)
        or (target in ("open", "rejected", "submitted") and filled != 0)
        or (target in ("cancelled", "expired") and filled == quantity)
    )
    if wrong:
        raise refuse(
            f"status {target} disagrees with the fills: {filled} of {quantity} filled"
            + ("; journal the fills first" if filled < quantity else "")
        )
    return target


def _filled(
    state: OrderState,
    change: Change,
    refuse: _Refuse,
    venue_order_id: str | None,
    seen: frozenset[str],
) -> OrderState:
    quantity, price = change.quantity, change.price
    if quantity is None or quantity <= 0:
        raise refuse(f"a fill's quantity must be > 0, got {quantity}")
    if price is None or price <= 0:
        raise refuse(f"a fill's price must be > 0, got {price}")
    late = state.status in _LATE_FILLS
    if state.status in FINAL_STATUSES and not late:
        raise refuse(f"the order is {state.status}")
    filled = ARITHMETIC.add(state.filled_quantity, quantity)
    if filled > state.quantity:
        raise refuse(f"filled would be {filled}, more than the order's quantity {state.quantity}")
    if late and filled == state.quantity:
        raise refuse(f"the order is {state.status}, and this fill would fill all of it")
    if late:
        status: OrderStatus = state.status
    else:
        status = "filled" if filled == state.quantity else "partially_filled"
    return _make_state(
        state.client_order_id,
        status,
        state.quantity,
        filled,
        WIDE.add(state.notional, WIDE.multiply(quantity, price)),
        venue_order_id,
        seen,
    )
