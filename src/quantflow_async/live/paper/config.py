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
from quantflow_async.live.symbols import split_symbol

DEFAULT_CASH: Final = Decimal(10_000)
DEFAULT_BAR_SECONDS: Final = 1.0
MIN_BAR_SECONDS: Final = 0.001
DEFAULT_STEP_SIZE: Final = Decimal("0.00000001")
DEFAULT_COMMISSION_PRECISION: Final = 8
NO_VOLUME_LIMIT: Final = Decimal(1)


@dataclass(frozen=True, slots=True)
class PaperExchangeConfig:
    """What one paper exchange serves: a bars file replayed as `symbol`, and its account.

    `bar_seconds` of wall time per bar. `max_volume_share` F < 1 lets the resting orders fill
    at most F x a bar's volume at its close, so they fill over several bars; 1 fills them whole,
    as the backtest's broker does. A fill's fee (`commission` x notional) is rounded half-even
    to `commission_precision` decimals of its asset, as Binance reports a commission (the
    `quoteCommissionPrecision` of exchangeInfo). `api_key` and `api_secret` together switch on
    Binance's signature checks; without them any key and signature are accepted.
    `start_when_asked` starts the replay at the first request for bars (klines) rather than
    when a new state file is made, so a client slow to start misses no bar.
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
    commission_precision: int = DEFAULT_COMMISSION_PRECISION
    max_volume_share: Decimal = NO_VOLUME_LIMIT
    api_key: str | None = None
    api_secret: str | None = None
    start_when_asked: bool = False

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
        max_volume_share: Decimal | float | str = NO_VOLUME_LIMIT,
        api_key: str | None = None,
        api_secret: str | None = None,
        start_when_asked: bool = False,
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
        share = _decimal("max_volume_share", max_volume_share)
        if not (0 < share <= 1):
            raise InvalidValue(
                "max_volume_share", f"must be a fraction in (0, 1], got {max_volume_share}"
            )
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
            max_volume_share=share,
            api_key=api_key,
            api_secret=api_secret,
            start_when_asked=bool(start_when_asked),
        )

    @property
    def limits_volume(self) -> bool:
        """Whether resting orders may fill partially (F < 1)."""
        return self.max_volume_share < NO_VOLUME_LIMIT

    @property
    def fee_step(self) -> Decimal:
        """The smallest fee: one unit of the commission precision's last decimal."""
        return Decimal(1).scaleb(-self.commission_precision)

    @property
    def checks_signatures(self) -> bool:
        return self.api_key is not None

    def __repr__(self) -> str:  # never show the secret
        secret = "set" if self.api_secret else None
        return (
            f"PaperExchangeConfig(symbol={self.symbol!r}, data={str(self.data)!r}, "
            f"state={str(self.state)!r}, host={self.host!r}, port={self.port}, "
            f"bar_seconds={self.bar_seconds}, max_volume_share={self.max_volume_share}, "
            f"api_secret={secret})"
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
