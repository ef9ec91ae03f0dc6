"""Which of a venue's trades a caller asked for: after a trade id, since an instant, in order."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from quantflow_async.errors import InvalidValue
from quantflow_async.live.venue import VenueTrade


def trade_number(trade_id: str | None) -> int | None:
    if trade_id is None:
        return None
    try:
        return int(trade_id)
    except ValueError:
        raise InvalidValue(
            "after_trade_id",
            f"must be a numeric trade id, got {trade_id!r}: CcxtVenue pages a venue's trades "
            "by number (Binance's fromId), and this venue's ids are not numbers",
        ) from None


def chosen_trades(
    trades: Iterable[VenueTrade], since: datetime | None, after: int | None
) -> list[VenueTrade]:
    """The trades from `since` and above trade id `after`, oldest first."""
    chosen = [
        t
        for t in trades
        if (after is None or (trade_number(t.trade_id) or 0) > after)
        and (since is None or t.executed_at >= since)
    ]
    return sorted(chosen, key=lambda t: (t.executed_at, trade_sort_key(t.trade_id)))


def trade_sort_key(trade_id: str) -> tuple[int, str]:
    return (int(trade_id), "") if trade_id.isdigit() else (0, trade_id)
