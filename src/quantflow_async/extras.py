"""Optional packages, imported only by the function that needs one, with one error when missing."""

from __future__ import annotations

import importlib
from typing import Any

from quantflow_async.errors import MissingExtra as MissingExtra  # still importable from here


def install_hint(extra: str) -> str:
    """The command that installs `extra`."""
    return f"pip install 'quantflow-async[{extra}]'"


def require_extra(module: str, *, extra: str, purpose: str | None = None) -> Any:
    """`module` imported, or MissingExtra naming the package and the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(module, extra=extra, purpose=purpose) from exc


def missing_extra(module: str, *, extra: str, purpose: str | None = None) -> MissingExtra:
    """The MissingExtra to raise from the ImportError of `module`, for a module that imports
    an extra's package at its top."""
    package = module.partition(".")[0]
    needs = f"{purpose} needs {package}" if purpose else f"{package} is needed"
    return MissingExtra(f"{needs}, which is not installed: {install_hint(extra)}", name=package)
