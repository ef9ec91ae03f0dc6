"""Optional packages, imported only by the function that needs one, with one error when missing."""

from __future__ import annotations

import importlib
from typing import Any

from quantflow_async.errors import QuantFlowError


class MissingExtra(QuantFlowError, ModuleNotFoundError):
    """A package of an optional extra is not installed; the message says how to install it.

    A ModuleNotFoundError, so code that already handles a missing import handles this too.
    """


def install_hint(extra: str) -> str:
    return f"pip install 'quantflow-async[{extra}]'"


def require_extra(module: str, *, extra: str, purpose: str | None = None) -> Any:
    """`module` imported, or MissingExtra naming the package and the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.partition(".")[0]
        needs = f"{purpose} needs {package}" if purpose else f"{package} is needed"
        raise MissingExtra(
            f"{needs}, which is not installed: {install_hint(extra)}", name=package
        ) from exc
