"""The optional packages of the `analysis` extra, imported only by the function that needs one."""

from __future__ import annotations

from typing import Any, Final

from quantflow_async.errors import MissingExtra
from quantflow_async.extras import install_hint, require_extra

INSTALL_HINT: Final = install_hint("analysis")

__all__ = ["INSTALL_HINT", "MissingExtra", "import_extra"]


def import_extra(module: str, purpose: str) -> Any:
    """`module` imported, or MissingExtra saying which extra to install for `purpose`."""
    return require_extra(module, extra="analysis", purpose=purpose)
