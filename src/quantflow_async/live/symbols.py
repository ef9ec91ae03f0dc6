"""A spot symbol's two assets: "BTCUSDT" is BTC priced in USDT.

The one place a symbol is split; the live runner and the paper exchange both call it.
"""

from __future__ import annotations

from typing import Final

from quantflow_async.errors import InvalidValue

QUOTE_ASSETS: Final = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
"""Quote assets recognised at the end of a symbol, longest first so FDUSD wins over USD."""


def split_symbol(symbol: str, quote: str | None = None) -> tuple[str, str]:
    """(base, quote) of a symbol such as BTCUSDT: `quote` when given, else a known quote asset
    at its end. InvalidValue names the symbol or the quote when neither leaves a base.
    """
    if not _is_code(symbol):
        raise InvalidValue("symbol", f"must be upper-case letters and digits, got {symbol!r}")
    if quote is not None:
        if not (_is_code(quote) and symbol.endswith(quote) and len(symbol) > len(quote)):
            raise InvalidValue("quote", f"symbol {symbol!r} does not end with quote {quote!r}")
        return symbol[: -len(quote)], quote
    for known in QUOTE_ASSETS:
        if symbol.endswith(known) and len(symbol) > len(known):
            return symbol[: -len(known)], known
    raise InvalidValue(
        "symbol",
        f"{symbol!r} does not end with a known quote asset ({', '.join(QUOTE_ASSETS)}); "
        "name the quote asset with --quote",
    )


def _is_code(text: str) -> bool:
    # str.isalnum alone accepts letters and digits of any script, such as "ÄUSDT"
    return text.isascii() and text.isalnum() and text.isupper()
