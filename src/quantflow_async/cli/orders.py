"""`quantflow orders list|show` and `quantflow positions`: what the order journal holds, read
only: orders and their events, net positions per strategy, venue and symbol, the last balances."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quantflow_async.cli.output import (
    is_terminal,
    print_fields,
    print_json,
    print_table,
    reading,
)
from quantflow_async.cli.parsing import COMMANDS, Parser, add_command, add_group
from quantflow_async.config import Settings
from quantflow_async.errors import NotFound
from quantflow_async.order_records import ORDER_STATUSES

if TYPE_CHECKING:
    from quantflow_async.database import Database
    from quantflow_async.order_records import BalanceSnapshot, Order, OrderEvent, Position

LISTED = (
    ("id", "id"),
    ("client order id", "client_order_id"),
    ("venue order id", "venue_order_id"),
    ("symbol", "symbol"),
    ("side", "side"),
    ("type", "type"),
    ("quantity", "quantity"),
    ("filled", "filled_quantity"),
    ("average price", "average_price"),
    ("status", "status"),
    ("updated", "updated_at"),
)
EVENT_COLUMNS = (
    "id", "kind", "status after", "quantity", "price", "fee", "reason", "venue event id",
    "occurred", "recorded",
)  # fmt: skip
POSITION_COLUMNS = (
    "strategy", "venue", "symbol", "quantity", "average price", "realized pnl", "fees", "updated",
)  # fmt: skip
BALANCE_COLUMNS = ("venue", "asset", "free", "locked", "total", "taken")
DEFAULT_LIMIT = 100


async def list_orders(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        strategy_id = await _strategy_id(db, args.strategy)
        page = await db.orders.list(
            strategy_id=strategy_id,
            venue=args.venue,
            status=args.status,
            symbol=args.symbol,
            limit=args.limit,
            after_id=args.after_id,
        )
    if args.json:
        print_json(page)
    else:
        print_table(
            [header for header, _ in LISTED],
            [tuple(getattr(order, name) for _, name in LISTED) for order in page],
            title="orders",
            empty="no orders match",
        )
    if len(page) == args.limit and is_terminal(sys.stderr):
        print(f"more orders follow: add --after-id {page[-1].id}", file=sys.stderr)


async def show_order(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        order = await _order(db, args.order)
        events = await db.orders.events(order.id)
    if args.json:
        print_json({**_plain_fields(order), "events": events})
        return
    print_fields(list(_plain_fields(order).items()), title=f"order {order.id}")
    print_table(
        EVENT_COLUMNS,
        [_event_row(event) for event in events],
        title="events",
        empty="no events journaled for this order",
    )


async def show_positions(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        strategy_id = await _strategy_id(db, args.strategy)
        held = await db.orders.positions(strategy_id=strategy_id, venue=args.venue)
        balances = await db.orders.balances(venue=args.venue, latest_only=True)
        names = {strategy.id: strategy.name for strategy in await db.strategies.list()}
    if args.json:
        print_json(
            {
                "positions": [
                    {**_plain_fields(position), "strategy": names.get(position.strategy_id)}
                    for position in held
                ],
                "balances": [{**_plain_fields(b), "total": b.total} for b in balances],
            }
        )
        return
    print_table(
        POSITION_COLUMNS,
        [_position_row(position, names) for position in held],
        title="positions",
        empty="no positions journaled",
    )
    if not is_terminal(sys.stdout):
        print()  # piped, the blank line is where the second table starts
    print_table(
        BALANCE_COLUMNS,
        [_balance_row(balance) for balance in balances],
        title="latest balances",
        empty="no balance snapshots journaled",
    )


async def _strategy_id(db: Database, given: str | None) -> int | None:
    """The id of the strategy with this id, else with this name; an unknown one is a mistake."""
    if given is None:
        return None
    if not given.isdecimal():
        return (await db.strategies.get_by_name(given)).id
    try:
        return (await db.strategies.get(int(given))).id
    except NotFound as by_id:
        try:
            return (await db.strategies.get_by_name(given)).id
        except NotFound:
            raise by_id from None


async def _order(db: Database, given: str) -> Order:
    """The order with this id, else with this client order id (which may be all digits)."""
    if given.isdecimal():
        try:
            return await db.orders.get(int(given))
        except NotFound:
            pass
    try:
        return await db.orders.get_by_client_order_id(given)
    except NotFound as exc:
        raise NotFound("order", given, field="id or client_order_id") from exc


def _plain_fields(record: Order | Position | BalanceSnapshot) -> dict[str, Any]:
    """The record's fields, as `print_json` shows a record, to add keys of our own to."""
    return {field.name: getattr(record, field.name) for field in fields(record)}


def _event_row(event: OrderEvent) -> tuple[Any, ...]:
    """A refused event is marked in its kind and shows what it attempted where it kept it."""
    attempted = dict(event.details or {}) if event.kind == "refused" else {}
    kind: str = event.kind
    if "attempted" in attempted:
        kind = f"refused ({attempted['attempted']})"
    return (
        event.id,
        kind,
        event.status_after,
        _or_attempted(event.quantity, attempted.get("quantity")),
        _or_attempted(event.price, attempted.get("price")),
        _fee(event),
        event.reason,
        event.venue_event_id or attempted.get("venue_event_id"),
        event.occurred_at,
        event.recorded_at,
    )


def _fee(event: OrderEvent) -> str | None:
    if event.fee is None:
        return None
    return " ".join(filter(None, (format(event.fee, "f"), event.fee_asset)))


def _or_attempted(value: Decimal | None, attempted: object) -> Decimal | str | None:
    """The event's own number, else the one a refused event kept (as text) as a Decimal."""
    if value is not None or attempted is None:
        return value
    try:
        return Decimal(str(attempted))
    except ArithmeticError:
        return str(attempted)


def _position_row(position: Position, names: dict[int, str]) -> tuple[Any, ...]:
    return (
        names.get(position.strategy_id, position.strategy_id),
        position.venue,
        position.symbol,
        position.quantity,
        position.average_price,
        position.realized_pnl,
        position.fees,
        position.updated_at,
    )


def _balance_row(balance: BalanceSnapshot) -> tuple[Any, ...]:
    return (
        balance.venue,
        balance.asset,
        balance.free,
        balance.locked,
        balance.total,
        balance.taken_at,
    )


def _owner_options(parser: Parser) -> None:
    parser.add_argument(
        "--strategy", metavar="NAME|ID", help="only this strategy's (an id first, else a name)"
    )
    parser.add_argument("--venue", metavar="VENUE", help="only this venue's (its journal name)")


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    verbs = add_group(commands, "orders")

    listing = add_command(
        verbs, "list", "one page of orders, oldest first (by id)", reading(list_orders)
    )
    _owner_options(listing)
    listing.add_argument(
        "--status",
        nargs="+",
        action="extend",
        choices=ORDER_STATUSES,
        metavar="STATUS",
        help=f"only orders in one of these statuses: {', '.join(ORDER_STATUSES)}",
    )
    listing.add_argument("--symbol", help="only this symbol's orders")
    listing.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"orders per page (default {DEFAULT_LIMIT})",
    )
    listing.add_argument(
        "--after-id", type=int, metavar="ID", help="the next page: the last id of the one before"
    )
    listing.add_argument("--json", action="store_true", help="print JSON, every field")

    show = add_command(
        verbs, "show", "show an order and its events, refused ones included", reading(show_order)
    )
    show.add_argument("order", metavar="ID|CLIENT_ORDER_ID", help="the order's id or client id")
    show.add_argument("--json", action="store_true", help="print JSON, every field and event")

    positions = add_command(
        commands,
        "positions",
        COMMANDS["positions"].summary,
        reading(show_positions),
    )
    _owner_options(positions)
    positions.add_argument("--json", action="store_true", help="print JSON instead of tables")
