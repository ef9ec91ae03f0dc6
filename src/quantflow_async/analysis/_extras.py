"""The optional packages of the `analysis` extra, imported only by the function that needs one."""

from __future__ import annotations

import importlib
from typing import Any, Final

INSTALL_HINT: Final = "pip install 'quantflow-async[analysis]'"


class MissingExtra(ModuleNotFoundError):
    """A package of the `analysis` extra is not installed; the message says how to install it.

    A ModuleNotFoundError, so code that already handles a missing import handles this too.
    """


def import_extra(module: str, purpose: str) -> Any:
    """`module` imported, or MissingExtra saying which extra to install for `purpose`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.partition(".")[0]
        raise MissingExtra(
            f"{purpose} needs {package}, which is not installed: {INSTALL_HINT}", name=package
        ) from exc
