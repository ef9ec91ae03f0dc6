"""A Binance request read and checked before the paper exchange is touched: its parameters
from the query and the body (duplicates and oversized or non-ASCII text refused), then, with
keys configured, Binance's checks of the key, the timestamp and the HMAC signature."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

from aiohttp import web

from quantflow_async.live.paper import rejections
from quantflow_async.live.paper.binance_params import Params, pairs, without_signature
from quantflow_async.live.paper.config import PaperExchangeConfig
from quantflow_async.live.paper.rejections import Rejected

MAX_QUERY_CHARS: Final = 4096  # below aiohttp's own 8190-byte request line limit
DEFAULT_RECV_WINDOW: Final = 5000
MAX_RECV_WINDOW: Final = 60_000


async def request_params(request: web.Request) -> tuple[Params, str]:
    """The parameters, and the text a signature covers (query then body, as Binance)."""
    query = request.raw_path.partition("?")[2]
    if len(query) > MAX_QUERY_CHARS:
        raise Rejected(-1101, f"Query string is longer than {MAX_QUERY_CHARS} characters.")
    body = ""
    if request.can_read_body:
        raw = await request.read()
        try:
            body = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise Rejected(-1100, "Illegal characters found in the request body.") from exc
    values: dict[str, str] = {}
    for name, value in pairs(query) + pairs(body):
        if name in values:
            raise Rejected(-1101, f"Duplicate values for parameter '{name}'.")
        values[name] = value
    signed_text = without_signature(query) + without_signature(body)
    return Params(values), signed_text


def authenticate(
    config: PaperExchangeConfig, request: web.Request, params: Params, signed_text: str
) -> None:
    """Binance's checks: the key, the timestamp within recvWindow, the HMAC signature."""
    api_key, secret = config.api_key, config.api_secret
    if api_key is None or secret is None:
        return
    key = request.headers.get("X-MBX-APIKEY")
    if not key:
        raise Rejected(-2014, "API-key format invalid.", 401)
    if not hmac.compare_digest(key.encode(), api_key.encode()):
        raise Rejected(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    timestamp = params.integer("timestamp")
    if timestamp is None:
        raise rejections.missing("timestamp")
    window = params.integer("recvWindow")
    window = DEFAULT_RECV_WINDOW if window is None else window
    if window > MAX_RECV_WINDOW:
        raise Rejected(-1131, f"recvWindow must be less than {MAX_RECV_WINDOW}.")
    now = time.time_ns() // 1_000_000
    if timestamp >= now + 1000:
        raise Rejected(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - timestamp > window:
        raise Rejected(-1021, "Timestamp for this request is outside of the recvWindow.")
    signature = params.required("signature")
    expected = hmac.new(secret.encode(), signed_text.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
        raise Rejected(-1022, "Signature for this request is not valid.")
