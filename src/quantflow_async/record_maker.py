"""Making frozen, slotted dataclass records fast, where a hot path makes one per row or event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

R = TypeVar("R")


def record_maker(cls: type[R], columns: Sequence[str]) -> Callable[..., R]:
    """A constructor of the frozen, slotted dataclass `cls` taking `columns` positionally.

    A frozen dataclass can only be filled through `object.__setattr__` or its slot
    descriptors, each a C call that builds an argument tuple: together they cost more than
    fetching the row did. So the record is filled as an instance of a twin class with the
    same slots, where each field is a plain attribute store, and then becomes a `cls` by
    class assignment, which CPython allows between classes of identical layout. That makes a
    record in about a third of the instructions. `__post_init__` still runs, so the record is
    the one `cls(...)` would make.
    """
    names = [field.name for field in fields(cls)]  # type: ignore[arg-type]
    if sorted(names) != sorted(columns):
        raise TypeError(f"{cls.__name__} has fields {names}, but the rows have {list(columns)}")
    twin = type(f"_{cls.__name__}Slots", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
    # A layout that differs fails here, at import, rather than at the first read.
    object.__setattr__(object.__new__(twin), "__class__", cls)
    post_init = ["    _post_init(record)"] if hasattr(cls, "__post_init__") else []
    source = "\n".join(
        [
            f"def make({', '.join(columns)}):",
            "    record = _new(_twin)",
            *(f"    record.{name} = {name}" for name in columns),
            "    record.__class__ = _cls",
            *post_init,
            "    return record",
        ]
    )
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_twin": twin,
        "_cls": cls,
        "_post_init": getattr(cls, "__post_init__", None),
    }
    exec(source, namespace)  # noqa: S102 - the source is made of our own field names only
    maker: Callable[..., R] = namespace["make"]
    return maker
