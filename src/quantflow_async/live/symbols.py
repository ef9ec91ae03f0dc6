"""A spot symbol's two assets: "BTCUSDT" is BTC priced in USDT."""

from __future__ import annotations

from typing import Final

from quantflow_async.errors import InvalidValue

QUOTE_ASSETS: Final = ("USDT", "USDC", "FDUSD", "TUSD", "BUSD", "USD", "EUR", "BTC", "ETH", "BNB")
"""Quote assets recognised at the end of a symbol, longest match first within each prefix."""


def split_symbol(symbol: str, quote: str | None = None) -> tuple[str, str]:
    """(base, quote) of `symbol`; `quote` when given, else a known quote asset at its end.

    Raises InvalidValue naming the symbol when neither gives a non-empty base.
    """
    candidates = (quote.upper(),) if quote else QUOTE_ASSETS
    upper = symbol.upper()
    for candidate in candidates:
        if upper.endswith(candidate) and len(upper) > len(candidate):
            return upper[: -len(candidate)], candidate
    known = f"{quote!r}" if quote else f"one of {', '.join(QUOTE_ASSETS)}"
    raise InvalidValue("symbol", f"{symbol!r} does not end in a quote asset ({known}); name it")
