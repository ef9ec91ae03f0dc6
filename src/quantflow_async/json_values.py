"""Read-only JSON as the records give it back: `JsonObject` and `JsonArray`, a dict and a
list that cannot be changed, and the helpers that freeze a parsed document or a record's
JSON fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, NoReturn


class JsonObject(dict[str, Any]):
    """A JSON object read back from the database: a dict that cannot be changed.

    It compares equal to a plain dict with the same content and `json.dumps` takes it as is;
    nested objects and arrays are read-only too. `dict(obj)` or `{**obj}` is a changeable
    (shallow) copy.
    """

    __slots__ = ()

    def __init__(self, items: Mapping[str, Any] | None = None, /) -> None:
        if items:
            super().__init__((key, frozen_json(value)) for key, value in items.items())

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a JsonObject is read-only; change a copy: dict(obj) or {**obj}")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))


class JsonArray(list[Any]):
    """A JSON array read back from the database: a list that cannot be changed.

    It compares equal to a plain list with the same content; `list(array)` is a changeable copy.
    """

    __slots__ = ()

    def __init__(self, items: Iterable[Any] = (), /) -> None:
        if type(items) is list and _JSON_SCALARS.issuperset(map(type, items)):
            super().__init__(items)  # nothing to freeze inside: an equity curve, a column
        else:
            super().__init__(frozen_json(item) for item in items)

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a JsonArray is read-only; change a copy: list(array)")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self),))


def frozen_json(value: Any) -> Any:
    """`value` (parsed JSON) with every dict and list replaced by a read-only copy."""
    kind = type(value)  # exact types first: parsed JSON is made of these, and it is fast
    if kind in _JSON_SCALARS:
        return value
    if kind is list:
        return JsonArray(value)
    if kind is dict:
        return JsonObject(value)
    if isinstance(value, JsonObject | JsonArray):
        return value
    if isinstance(value, Mapping):
        return JsonObject(value)
    if isinstance(value, list | tuple):
        return JsonArray(value)
    return value


_JSON_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def freeze_fields(record: object, *names: str) -> None:
    """Replace the JSON fields of a frozen record by read-only copies."""
    for name in names:
        value = getattr(record, name)
        if value is not None and not isinstance(value, JsonObject):
            object.__setattr__(record, name, JsonObject(value))
