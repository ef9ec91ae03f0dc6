"""A Binance request's parameters, read with Binance's rules: the legal ranges of numbers and
client ids, the limit's bounds, and the text a signature covers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final
from urllib.parse import parse_qsl

from quantflow_async.live.paper import rejections
from quantflow_async.live.paper.rejections import Rejected

DEFAULT_LIMIT: Final = 500
MAX_LIMIT: Final = 1000

DECIMAL_RANGE: Final = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INTEGER_RANGE: Final = r"^[0-9]{1,20}$"
CLIENT_ID_RANGE: Final = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_DECIMAL = re.compile(DECIMAL_RANGE)
_INTEGER = re.compile(INTEGER_RANGE)
_CLIENT_ID = re.compile(CLIENT_ID_RANGE)


@dataclass(frozen=True, slots=True)
class Params:
    """A request's parameters (query and form body together), each read with Binance's rules."""

    values: Mapping[str, str]

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value else None

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise rejections.missing(name)
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self.text(name)
        if value is None:
            return None
        if not _DECIMAL.match(value):
            raise rejections.illegal(name, DECIMAL_RANGE)
        return Decimal(value)

    def integer(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not _INTEGER.match(value):
            raise rejections.illegal(name, INTEGER_RANGE)
        return int(value)

    def client_id(self, name: str) -> str | None:
        value = self.text(name)
        if value is not None and not _CLIENT_ID.match(value):
            raise rejections.illegal(name, CLIENT_ID_RANGE)
        return value

    def limit(self) -> int:
        value = self.integer("limit")
        if value is None:
            return DEFAULT_LIMIT
        if not 1 <= value <= MAX_LIMIT:
            raise Rejected(
                -1100,
                f"Illegal characters found in parameter 'limit'; legal range is '1..{MAX_LIMIT}'.",
            )
        return value


def pairs(raw: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(-1100, "Illegal characters found in a parameter.") from exc


def without_signature(raw: str) -> str:
    """The signed text: the parameters as sent, minus the signature itself."""
    return "&".join(part for part in raw.split("&") if not part.startswith("signature="))
