"""A ccxt `binance` client pointed at any base URL: a real exchange's or the paper exchange's.

Every entry of `urls['api']` gets the given scheme and host (each keeps its path), so that no
endpoint can reach another host; `load_markets()` then asks only `/api/v3/exchangeInfo`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from quantflow_async.errors import InvalidValue
from quantflow_async.extras import require_extra

if TYPE_CHECKING:
    from ccxt.async_support import binance


def binance_client(
    base_url: str,
    *,
    api_key: str,
    secret: str,
    timeout_ms: int = 10_000,
    rate_limit: bool = False,
) -> binance:
    """`ccxt.async_support.binance` talking to `base_url` (e.g. "http://127.0.0.1:8765").

    Raises InvalidValue for a URL that is not http(s)://host[:port]. Needs the `live` extra.
    """
    parts = checked_venue_url(base_url)
    ccxt_async = require_extra("ccxt.async_support", extra="live")
    client: binance = ccxt_async.binance(
        {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": rate_limit,
            "timeout": timeout_ms,
            "options": {
                "fetchCurrencies": False,
                "fetchMargins": False,
                "fetchMarkets": {"types": ["spot"]},
                "defaultType": "spot",
                "warnOnFetchOpenOrdersWithoutSymbol": False,
                "fetchOpenOrders": {"warnWithoutSymbol": False},
            },
        }
    )
    client.urls["api"] = _rebased(client.urls["api"], parts.scheme, parts.netloc)
    return client


def checked_venue_url(base_url: str) -> SplitResult:
    """`base_url` split, or InvalidValue when it is not http(s)://host[:port]."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidValue("venue", f"must be an http(s)://host[:port] URL, got {base_url!r}")
    return parts


def _rebased(urls: Any, scheme: str, netloc: str) -> Any:
    """`urls` (nested dicts of URL strings) with every URL's scheme and host replaced."""
    if isinstance(urls, dict):
        return {key: _rebased(value, scheme, netloc) for key, value in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        old = urlsplit(urls)
        new_scheme = {"ws": "ws", "wss": "ws"}.get(old.scheme, scheme)
        if scheme == "https" and new_scheme == "ws":
            new_scheme = "wss"
        return urlunsplit((new_scheme, netloc, old.path, old.query, old.fragment))
    return urls
