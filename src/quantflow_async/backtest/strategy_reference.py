"""Strategies named by reference: a built-in name, `path/to/file.py:ClassName`,
`package.module:ClassName`, or the name of an installed one (entry-point group
`quantflow.strategies`). The same reference finds the same class in any process, so a
stored backtest or a sweep's worker can load it again.

Every mistake is one StrategyConfigError naming the reference: a missing file or module, a
syntax error in the file (with its line), a missing class, a class that is not a Strategy,
and a class defined inside a function (no other process can import it).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Final

from quantflow_async.backtest.strategy import Strategy, StrategyConfigError

ENTRY_POINT_GROUP: Final = "quantflow.strategies"
_FILE_MODULE_PREFIX: Final = "quantflow_strategy_file_"


def load_strategy(reference: str, builtin: dict[str, type[Strategy]]) -> type[Strategy]:
    """The Strategy subclass `reference` names; `builtin` maps the built-in names."""
    if not isinstance(reference, str) or not reference.strip():
        raise StrategyConfigError("strategy", f"expected a strategy name, got {reference!r}")
    if reference in builtin:
        return builtin[reference]
    if ":" not in reference:
        installed = _installed_points()
        if reference in installed:
            point = installed[reference]
            return _checked(_loaded(point), f"{reference} ({point.value})")
        known = ", ".join(sorted({*builtin, *installed}))
        raise StrategyConfigError(
            "strategy",
            f"unknown strategy {reference!r} (known: {known}); or give FILE.py:CLASS or "
            "package.module:CLASS",
        )
    where, _, name = reference.rpartition(":")
    if not where or not name.isidentifier():
        raise StrategyConfigError(
            "strategy", f"{reference!r}: expected FILE.py:CLASS or package.module:CLASS"
        )
    module = _file_module(where) if _is_file(where) else _import(where)
    found = getattr(module, name, None)
    if found is None:
        classes = sorted(
            n
            for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy
        )
        defines = f" (it defines: {', '.join(classes)})" if classes else ""
        raise StrategyConfigError("strategy", f"{where} has no class {name!r}{defines}")
    return _checked(found, reference)


def reference_of(cls: type[Strategy], builtin: dict[str, type[Strategy]]) -> str:
    """The reference that loads `cls` again in another process, or StrategyConfigError for a
    class no other process can import (defined inside a function, or in `__main__`)."""
    for name, registered in builtin.items():
        if registered is cls:
            return name
    if "<locals>" in cls.__qualname__:
        raise StrategyConfigError(
            "strategy",
            f"{cls.__qualname__} is defined inside a function, so worker processes cannot "
            "import it; define it at the top level of a module or file",
        )
    module = sys.modules.get(cls.__module__)
    source = getattr(module, "__file__", None)
    if cls.__module__.startswith(_FILE_MODULE_PREFIX) and source:
        return f"{source}:{cls.__qualname__}"
    if cls.__module__ == "__main__":
        if source:
            return f"{Path(source).resolve()}:{cls.__qualname__}"
        raise StrategyConfigError(
            "strategy", f"{cls.__qualname__} is defined in an interactive session; put it in a file"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


def is_loaded_from_file(cls: type) -> bool:
    """Whether `cls` comes from a file `load_strategy` loaded (a module no other process has)."""
    return cls.__module__.startswith(_FILE_MODULE_PREFIX)


def installed_strategies() -> dict[str, str]:
    """The strategies installed packages declare, by name: {name: "module:Class"}."""
    return {name: point.value for name, point in _installed_points().items()}


def _installed_points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def _loaded(point: EntryPoint) -> object:
    try:
        return point.load()
    except Exception as exc:
        raise StrategyConfigError(
            "strategy", f"installed strategy {point.name!r} ({point.value}) did not load: {exc}"
        ) from None


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _file_module(where: str) -> ModuleType:
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        raise StrategyConfigError("strategy", f"no such file: {where}")
    # One module per file and content: the same file loads once per process, under a name
    # that no package of the user's can take.
    digest = hashlib.sha256(f"{path}\0{path.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    module_name = f"{_FILE_MODULE_PREFIX}{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    if str(path.parent) not in sys.path:
        # Its own imports (a helpers.py beside it) resolve as they do when Python runs a
        # file: in the command, and in every worker, which loads it by the same path. Last
        # on the path, so nothing beside it shadows a module already importable.
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StrategyConfigError("strategy", f"{where} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise StrategyConfigError(
            "strategy", f"{where}, line {exc.lineno}: syntax error: {exc.msg}"
        ) from None
    except Exception as exc:
        del sys.modules[module_name]
        raise StrategyConfigError(
            "strategy", f"{where} failed when loaded: {type(exc).__name__}: {exc}"
        ) from None
    return module


def _import(where: str) -> ModuleType:
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise StrategyConfigError(
            "strategy", f"no module {exc.name!r} (importing {where!r})"
        ) from None
    except SyntaxError as exc:
        raise StrategyConfigError(
            "strategy", f"{exc.filename}, line {exc.lineno}: syntax error: {exc.msg}"
        ) from None
    except Exception as exc:
        raise StrategyConfigError(
            "strategy", f"module {where!r} failed when imported: {type(exc).__name__}: {exc}"
        ) from None


def _checked(found: object, shown: str) -> type[Strategy]:
    if not (isinstance(found, type) and issubclass(found, Strategy)):
        kind = type(found).__name__ if not isinstance(found, type) else f"class {found.__name__}"
        raise StrategyConfigError(
            "strategy", f"{shown} is a {kind}, not a subclass of quantflow_async's Strategy"
        )
    return found
