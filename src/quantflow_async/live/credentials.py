"""A venue's API key and secret: loaded from arguments, the environment or a file, never shown.

`scrub()` is the one place a text (an exception message, a log line) loses every secret it
may carry: the secret, the API key and any request `signature=` before it leaves the adapter;
`ScrubbingFilter` applies it to a logger's records.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

from quantflow_async.errors import InvalidValue

API_KEY_ENV: Final = "QUANTFLOW_VENUE_API_KEY"
API_SECRET_ENV: Final = "QUANTFLOW_VENUE_API_SECRET"  # noqa: S105 - a variable name
MASK: Final = "***"
# A key shorter than this shows none of its characters: four of eight would give half away.
_MIN_KEY_SHOWN: Final = 12
_SIGNATURE = re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` (as written and URL-encoded) and every
    `signature=...` value replaced by ***."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        encoded = quote(secret, safe="")
        if encoded != secret:
            text = text.replace(encoded, MASK)
    return _SIGNATURE.sub(rf"\g<1>{MASK}", text)


class ScrubbingFilter(logging.Filter):
    """Rewrites a logger's records without `secrets`: ccxt's own debug lines carry URLs,
    signatures and the API key header."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage(), self._secrets)
        record.args = ()
        return True


@dataclass(frozen=True, slots=True, repr=False)
class VenueCredentials:
    """An API key and its secret. `repr()` and `str()` say only that both are set, and show
    the key's last four characters when the key is long enough to spare them."""

    api_key: str
    secret: str

    def __post_init__(self) -> None:
        for name in ("api_key", "secret"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidValue(name, "must be a non-empty string")

    def __repr__(self) -> str:
        key = "set"
        if len(self.api_key) >= _MIN_KEY_SHOWN:
            key = f"set, ending ...{self.api_key[-4:]}"
        return f"VenueCredentials(api_key=<{key}>, secret=<set>)"

    __str__ = __repr__

    def scrub(self, text: str) -> str:
        """`text` without this key, this secret or a request signature."""
        return scrub(text, (self.api_key, self.secret))

    @classmethod
    def placeholder(cls) -> VenueCredentials:
        """Credentials for the paper exchange started without --api-key, which takes any."""
        return cls("quantflow-paper-api-key", "quantflow-paper-api-secret")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VenueCredentials:
        """From QUANTFLOW_VENUE_API_KEY and QUANTFLOW_VENUE_API_SECRET; InvalidValue names a
        variable that is missing or empty."""
        env = os.environ if environ is None else environ
        values = {}
        for name, variable in (("api_key", API_KEY_ENV), ("secret", API_SECRET_ENV)):
            value = env.get(variable, "")
            if not value.strip():
                raise InvalidValue(name, f"${variable} is not set")
            values[name] = value
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> VenueCredentials:
        """From a JSON file `{"api_key": "...", "api_secret": "..."}`.

        The file must be readable by its owner only (mode 0600 or stricter) on systems with
        POSIX permissions: a secret any other user can read is refused, not just warned about.
        """
        file = Path(path)
        try:
            mode = file.stat().st_mode
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidValue("credentials file", f"cannot read {file}: {exc.strerror}") from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidValue(
                "credentials file",
                f"{file} is open to group or others (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {file}",
            )
        try:
            data = json.loads(text)
        except ValueError:
            # The decoder's message quotes the text around the error: it may hold the secret.
            raise InvalidValue("credentials file", f"{file} is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidValue("credentials file", f"{file} must hold a JSON object")
        missing = [key for key in ("api_key", "api_secret") if not isinstance(data.get(key), str)]
        if missing:
            raise InvalidValue("credentials file", f"{file} has no string {missing[0]!r}")
        return cls(data["api_key"], data["api_secret"])
