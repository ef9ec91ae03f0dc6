"""What the CcxtVenue tests share: the symbol, a steady bars file for the paper exchange, and
what the exchange itself holds and was sent (its state file, the requests a proxy forwarded).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

from tests.support.fault_proxy import FaultProxy
from tests.support.paper import Ohlc, write_bars

SYMBOL = "BTC/USDT"


def rising_bars(path: Path, count: int = 400) -> Path:
    """A bars file of `count` bars opening at 100.00 and rising by 0.25 a bar, each spanning
    open - 2 to open + 2 and closing at open + 1 (prices with two decimals: tick 0.01)."""
    rows: list[Ohlc] = []
    for k in range(count):
        price = 100.0 + 0.25 * k
        rows.append((price, price + 2, price - 2, price + 1))
    return write_bars(path, rows)


def orders_on_exchange(state: Path) -> Counter[str]:
    """Client order ids as the paper exchange's own state file holds them."""
    db = sqlite3.connect(state)
    try:
        rows = db.execute("SELECT client_order_id FROM orders").fetchall()
    finally:
        db.close()
    return Counter(row[0] for row in rows)


def sent_to_exchange(proxy: FaultProxy) -> Counter[str]:
    """How many order requests for each client id reached the exchange through `proxy`."""
    sent: Counter[str] = Counter()
    for request_line, body in proxy.forwarded:
        if request_line.startswith("POST /api/v3/order"):
            sent.update(parse_qs(body.decode())["newClientOrderId"])
    return sent
