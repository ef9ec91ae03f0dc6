"""Binance's error answers: `{"code": -1022, "msg": "..."}` with the HTTP status it uses.

`Rejected` never leaves the server: the HTTP layer turns it into the answer a client reads.
"""

from __future__ import annotations

from typing import Final

INSUFFICIENT_BALANCE: Final = "Account has insufficient balance for requested action."


class Rejected(Exception):
    """A request Binance would refuse; `code` and `msg` are what it answers."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def missing(name: str) -> Rejected:
    return Rejected(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str, legal: str) -> Rejected:
    return Rejected(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def filter_failure(name: str) -> Rejected:
    return Rejected(-1013, f"Filter failure: {name}")


def insufficient_balance() -> Rejected:
    return Rejected(-2010, INSUFFICIENT_BALANCE)


def market_closed() -> Rejected:
    return Rejected(-2010, "Market is closed.")


def duplicate_order() -> Rejected:
    return Rejected(-2010, "Duplicate order sent.")


def unknown_order(*, cancelling: bool) -> Rejected:
    if cancelling:
        return Rejected(-2011, "Unknown order sent.")
    return Rejected(-2013, "Order does not exist.")
