"""The paper exchange's settings, checked once: one frozen `PaperExchangeConfig`.

Defaults live here; the CLI and the test helpers build one and hand it to the server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final

from quantflow_async.errors import InvalidValue

KNOWN_QUOTES: Final = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
"""Quote assets a symbol may end with, longest first so FDUSD wins over USD."""

DEFAULT_CASH: Final = Decimal(10_000)
DEFAULT_BAR_SECONDS: Final = 1.0
MIN_BAR_SECONDS: Final = 0.001
DEFAULT_STEP_SIZE: Final = Decimal("0.00000001")


def split_symbol(symbol: str, quote: str | None = None) -> tuple[str, str]:
    """(base, quote) of a Binance symbol such as BTCUSDT; `quote` when the suffix is unknown."""
    if not symbol.isalnum() or not symbol.isupper():
        raise InvalidValue("symbol", f"must be upper-case letters and digits, got {symbol!r}")
    if quote is not None:
        if not symbol.endswith(quote) or len(symbol) == len(quote):
            raise InvalidValue("quote", f"symbol {symbol!r} does not end with quote {quote!r}")
        return symbol[: -len(quote)], quote
    for known in KNOWN_QUOTES:
        if symbol.endswith(known) and len(symbol) > len(known):
            return symbol[: -len(known)], known
    raise InvalidValue(
        "symbol",
        f"{symbol!r} does not end with a known quote asset ({', '.join(KNOWN_QUOTES)}); "
        "name the quote asset with --quote",
    )


@dataclass(frozen=True, slots=True)
class PaperExchangeConfig:
    """What one paper exchange serves: a bars file replayed as `symbol`, and its account.

    `bar_seconds` of wall time per bar. `api_key` and `api_secret` together switch on
    Binance's signature checks; without them any key and signature are accepted.
    """

    data: Path
    symbol: str
    state: Path
    base: str
    quote: str
    host: str = "127.0.0.1"
    port: int = 0
    bar_seconds: float = DEFAULT_BAR_SECONDS
    cash: Decimal = DEFAULT_CASH
    commission: Decimal = Decimal(0)
    step_size: Decimal = DEFAULT_STEP_SIZE
    api_key: str | None = None
    api_secret: str | None = None

    @classmethod
    def of(
        cls,
        *,
        data: str | Path,
        symbol: str,
        state: str | Path,
        quote: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        bar_seconds: float = DEFAULT_BAR_SECONDS,
        cash: Decimal | float | str = DEFAULT_CASH,
        commission: Decimal | float | str = 0,
        api_key: str | None = None,
        api_secret: str | None = None,
    ) -> PaperExchangeConfig:
        """A config with every value checked; InvalidValue names the first bad one."""
        base, quote_asset = split_symbol(symbol, quote)
        if not (0 <= port <= 65_535):
            raise InvalidValue("port", f"must be 0..65535, got {port}")
        if not (math.isfinite(bar_seconds) and bar_seconds >= MIN_BAR_SECONDS):
            raise InvalidValue("bar_seconds", f"must be >= {MIN_BAR_SECONDS}, got {bar_seconds}")
        cash_value = _decimal("cash", cash)
        rate = _decimal("commission", commission)
        if cash_value < 0:
            raise InvalidValue("cash", f"must be >= 0, got {cash}")
        if not (0 <= rate < 1):
            raise InvalidValue("commission", f"must be a fraction in [0, 1), got {commission}")
        if (api_key is None) != (api_secret is None):
            raise InvalidValue("api_key", "give both an API key and an API secret, or neither")
        if api_key is not None and not api_key:
            raise InvalidValue("api_key", "must not be empty")
        if api_secret is not None and not api_secret:
            raise InvalidValue("api_secret", "must not be empty")
        return cls(
            data=Path(data),
            symbol=symbol,
            state=Path(state),
            base=base,
            quote=quote_asset,
            host=host,
            port=port,
            bar_seconds=float(bar_seconds),
            cash=cash_value,
            commission=rate,
            api_key=api_key,
            api_secret=api_secret,
        )

    @property
    def checks_signatures(self) -> bool:
        return self.api_key is not None

    def __repr__(self) -> str:  # never show the secret
        secret = "set" if self.api_secret else None
        return (
            f"PaperExchangeConfig(symbol={self.symbol!r}, data={str(self.data)!r}, "
            f"state={str(self.state)!r}, host={self.host!r}, port={self.port}, "
            f"bar_seconds={self.bar_seconds}, api_secret={secret})"
        )


def _decimal(name: str, value: Decimal | float | str) -> Decimal:
    try:
        number = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else value)
        )
    except ArithmeticError as exc:
        raise InvalidValue(name, f"not a number: {value!r}") from exc
    if not number.is_finite():
        raise InvalidValue(name, f"must be finite, got {value!r}")
    return number
