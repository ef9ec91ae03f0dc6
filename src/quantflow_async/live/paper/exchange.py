"""The paper account's operations: place, cancel and query orders, catch the replay up.

Before answering anything the exchange evaluates every bar that closed since the last one it
evaluated, in bar order, so a restart after downtime catches up exactly as if it had run.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from quantflow_async.backtest.bars import read_bars
from quantflow_async.live.paper import rejections
from quantflow_async.live.paper.config import PaperExchangeConfig
from quantflow_async.live.paper.market import Bar, Clock, Market, Replay
from quantflow_async.live.paper.matching import (
    LIMIT_TYPES,
    Resting,
    Side,
    fill_on_arrival,
    on_bar_close,
    portion,
    settle,
    would_take,
)
from quantflow_async.live.paper.rows import BarChange, Execution, NewOrderRow, OrderRow, TradeRow
from quantflow_async.live.paper.state import State

MIN_NOTIONAL = Decimal("0.00000001")
MAX_QUANTITY = Decimal("9000000000")
MAX_PRICE = Decimal("1000000000")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order as the HTTP layer parsed it; `quote_quantity` is a market order's
    quoteOrderQty (how much quote to spend) when `quantity` is not given."""

    client_order_id: str | None
    side: Side
    type: str
    time_in_force: str | None
    quantity: Decimal | None
    quote_quantity: Decimal | None
    price: Decimal | None
    stop_price: Decimal | None


@dataclass(frozen=True, slots=True)
class KlineRow:
    bar: Bar
    close_time_ms: int
    closed: bool


class PaperExchange:
    """One symbol's replayed market and one account, over a `State` file."""

    def __init__(
        self, config: PaperExchangeConfig, market: Market, state: State, clock: Clock
    ) -> None:
        self.config = config
        self.market = market
        self.state = state
        self.clock = clock
        t0_ns = state.t0_ns
        self.replay = None if t0_ns is None else Replay(t0_ns, _bar_ns(config), len(market))
        """None while the replay waits for the first request for bars (`start_when_asked`)."""
        self.on_start: Callable[[], None] | None = None

    @classmethod
    def open(cls, config: PaperExchangeConfig, clock: Clock = time.time_ns) -> PaperExchange:
        """Read the bars and open (or create) the state file; every mistake is raised here."""
        market = Market.of(read_bars(config.data))
        state = State.open(
            config.state,
            symbol=config.symbol,
            base=config.base,
            quote=config.quote,
            bar_ns=_bar_ns(config),
            cash=config.cash,
            now_ns=None if config.start_when_asked else clock(),
        )
        return cls(config, market, state, clock)

    def start(self) -> Replay:
        """The replay, started now if it was waiting."""
        if self.replay is None:
            t0_ns = self.state.start_replay(self.clock())
            self.replay = Replay(t0_ns, _bar_ns(self.config), len(self.market))
            if self.on_start is not None:
                self.on_start()
        return self.replay

    def close(self) -> None:
        self.state.close()

    # -- the replay -------------------------------------------------------------------------

    def forming(self) -> int:
        """The bar forming now: 0 while the replay waits."""
        return 0 if self.replay is None else self.replay.forming(self.clock())

    @property
    def is_closed(self) -> bool:
        """Whether the data is over: no bar forms any more."""
        return self.forming() >= len(self.market)

    def data_time_ms(self) -> int:
        """The replayed data's time now: the forming bar's open, or the last bar's close."""
        index = self.forming()
        if index < len(self.market):
            return self.market.bars[index].time_ms
        return self.market.close_time_ms(len(self.market) - 1)

    def catch_up(self) -> None:
        """Evaluate the resting orders against every bar closed since the last evaluated one."""
        closed = 0 if self.replay is None else self.replay.closed(self.clock())
        for index in range(self.state.processed, closed):
            self._evaluate(self.market.bars[index])

    def _evaluate(self, bar: Bar) -> None:
        """The open orders against closed `bar`, oldest first, sharing its volume budget."""
        balances = self.state.balances()
        quote, base = balances[self.config.quote], balances[self.config.base]
        budget = self._volume_budget(bar)
        changes: list[BarChange] = []
        for order in self.state.open_orders():
            resting = Resting(
                order.side, order.type, order.price, order.stop_price, order.triggered
            )
            outcome = on_bar_close(resting, bar)
            if outcome.price is None:
                if outcome.triggered:
                    changes.append(BarChange(order.id, order.side, True))
                continue
            # a triggered stop-market is a market order: it fills whole, as market orders do
            limited = budget if order.limit_priced else None
            quantity = portion(order.remaining, limited, self.config.step_size)
            if not quantity:
                changes.append(BarChange(order.id, order.side, outcome.triggered))
                continue
            paid = settle(
                order.side,
                quantity,
                outcome.price,
                self.config.commission,
                quote=quote,
                base=base,
                fee_step=self.config.fee_step,
            )
            if paid is None:  # the broker cancels an order it cannot pay for when it comes due
                changes.append(BarChange(order.id, order.side, outcome.triggered, status="EXPIRED"))
                continue
            quote, base = paid.quote, paid.base
            if budget is not None:
                budget = max(Decimal(0), budget - quantity)
            # a limit that rested is a maker; a stop reached in this bar takes
            maker = order.type in LIMIT_TYPES and not outcome.triggered
            execution = Execution(
                outcome.price, quantity, paid.fee, bar.time_ms, maker, quote, base
            )
            changes.append(BarChange(order.id, order.side, outcome.triggered, execution))
        self.state.evaluate_bar(bar.index, bar.time_ms, changes)

    def _volume_budget(self, bar: Bar) -> Decimal | None:
        """How much the account may trade at `bar`'s close: F x its volume, None for no limit."""
        if not self.config.limits_volume or bar.volume is None:
            return None
        return self.config.max_volume_share * bar.volume

    # -- orders -----------------------------------------------------------------------------

    def place(self, request: OrderRequest) -> tuple[OrderRow, list[TradeRow]]:
        """Accept `request`: fill it at once when the rules say so, else leave it resting."""
        index = self.forming()
        if index >= len(self.market):
            raise rejections.market_closed()
        bar = self.market.bars[index]
        client_id = request.client_order_id or _new_client_id()
        if self.state.order(client_order_id=client_id) is not None:
            raise rejections.duplicate_order()
        quantity = self._quantity(request, bar)
        self._check_filters(request, quantity, bar)
        limit = request.price if request.type in LIMIT_TYPES else None
        if (
            request.type == "LIMIT_MAKER"
            and limit is not None
            and would_take(request.side, limit, bar)
        ):
            raise rejections.Rejected(-2010, "Order would immediately match and take.")
        at_once = fill_on_arrival(request.side, request.type, limit, bar)
        check_price = at_once or limit or request.stop_price or bar.open
        balances = self.state.balances()
        paid = settle(
            request.side,
            quantity,
            check_price,
            self.config.commission,
            quote=balances[self.config.quote],
            base=balances[self.config.base],
            fee_step=self.config.fee_step,
        )
        if paid is None:
            raise rejections.insufficient_balance()
        row = NewOrderRow(
            client_order_id=client_id,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            quantity=quantity,
            price=limit,
            stop_price=request.stop_price,
            time_ms=bar.time_ms,
        )
        if at_once is None:
            status = "EXPIRED" if request.time_in_force in ("IOC", "FOK") else "NEW"
            return self.state.add_order(row, None, status=status)
        execution = Execution(
            at_once, quantity, paid.fee, bar.time_ms, False, paid.quote, paid.base
        )
        return self.state.add_order(row, execution)

    def _quantity(self, request: OrderRequest, bar: Bar) -> Decimal:
        if request.quantity is not None:
            return request.quantity
        if request.type != "MARKET" or request.quote_quantity is None:
            raise rejections.missing("quantity")
        # quoteOrderQty: as many steps as that much quote buys at the open
        steps = (request.quote_quantity / bar.open / self.config.step_size).to_integral_value(
            ROUND_DOWN
        )
        return steps * self.config.step_size

    def _check_filters(self, request: OrderRequest, quantity: Decimal, bar: Bar) -> None:
        step = self.config.step_size
        if quantity < step or quantity > MAX_QUANTITY or quantity % step:
            raise rejections.filter_failure("LOT_SIZE")
        tick = self.market.tick_size
        for price in (request.price, request.stop_price):
            if price is not None and (price < tick or price > MAX_PRICE or price % tick):
                raise rejections.filter_failure("PRICE_FILTER")
        reference = request.price if request.type in LIMIT_TYPES else bar.open
        if reference is not None and quantity * reference < MIN_NOTIONAL:
            raise rejections.filter_failure("NOTIONAL")

    def cancel(self, *, order_id: int | None, client_order_id: str | None) -> OrderRow:
        order = self.state.order(order_id=order_id, client_order_id=client_order_id)
        if order is None or not order.is_open:
            raise rejections.unknown_order(cancelling=True)
        return self.state.cancel(order.id, self.data_time_ms())

    def order(self, *, order_id: int | None, client_order_id: str | None) -> OrderRow:
        order = self.state.order(order_id=order_id, client_order_id=client_order_id)
        if order is None:
            raise rejections.unknown_order(cancelling=False)
        return order

    # -- market data ------------------------------------------------------------------------

    def klines(self, *, start_ms: int | None, end_ms: int | None, limit: int) -> list[KlineRow]:
        """Closed bars and the forming one (open = high = low = close = its open, volume 0);
        the first request starts a replay that waits for it."""
        self.start()
        forming = self.forming()
        visible = self.market.bars[: forming + 1]
        chosen = [
            bar
            for bar in visible
            if (start_ms is None or bar.time_ms >= start_ms)
            and (end_ms is None or bar.time_ms <= end_ms)
        ]
        chosen = chosen[:limit] if start_ms is not None else chosen[-limit:]
        rows = []
        for bar in chosen:
            closed = bar.index < forming
            if not closed:
                bar = Bar(
                    bar.index, bar.time_ms, bar.open, bar.open, bar.open, bar.open, Decimal(0)
                )
            rows.append(KlineRow(bar, self.market.close_time_ms(bar.index), closed))
        return rows


def _bar_ns(config: PaperExchangeConfig) -> int:
    return max(1, round(config.bar_seconds * 1e9))


def _new_client_id() -> str:
    """What Binance does without newClientOrderId: a random id of its own."""
    return secrets.token_urlsafe(16)[:22]
