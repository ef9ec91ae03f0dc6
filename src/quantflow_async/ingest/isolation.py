"""Batch isolation: commit every fill of a batch the database takes, and find each one it
refuses, as a pure function over a store (so it is tested with a fake one as well).

Refusals the database can name in bulk (a strategy or backtest that does not exist) are found
with one query; what remains is split in halves until each refused fill stands alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from quantflow_async.records import Fill


class RowsRefused(Exception):
    """The database refused the rows of one attempt; nothing of it was committed."""


class IsolatingStore(Protocol):
    async def store(self, fills: Sequence[Fill]) -> int:
        """Commit `fills` in one transaction and return how many were new, or raise
        RowsRefused (nothing committed). Any other error is not about the rows."""
        ...

    async def find_refused(self, fills: Sequence[Fill]) -> dict[int, str]:
        """Index -> reason for the fills the database can tell are bad in one query."""
        ...


Committed = Callable[[Sequence[int], int], None]
"""Called with the indexes of fills just committed and how many of them were new."""
Refused = Callable[[int, str], None]
"""Called with the index of a fill the database refused and the reason."""


async def store_isolating(
    store: IsolatingStore, fills: Sequence[Fill], committed: Committed, refused: Refused
) -> None:
    """Settle every fill of `fills` through `committed` or `refused`, each exactly once.

    An error other than RowsRefused propagates at once; what was settled before it has been
    reported, and the rest is unsettled.
    """
    await _settle(store, fills, list(range(len(fills))), committed, refused, bulk=True)


async def _settle(
    store: IsolatingStore,
    fills: Sequence[Fill],
    indexes: list[int],
    committed: Committed,
    refused: Refused,
    *,
    bulk: bool,
) -> None:
    if not indexes:
        return
    part = [fills[i] for i in indexes]
    try:
        inserted = await store.store(part)
    except RowsRefused as refusal:
        reason = str(refusal)
    else:
        committed(indexes, inserted)
        return
    if bulk:
        named = await store.find_refused(part)
        if named:
            for position, why in sorted(named.items()):
                refused(indexes[position], why)
            rest = [index for position, index in enumerate(indexes) if position not in named]
            await _settle(store, fills, rest, committed, refused, bulk=False)
            return
    if len(indexes) == 1:
        refused(indexes[0], reason)
        return
    middle = len(indexes) // 2
    await _settle(store, fills, indexes[:middle], committed, refused, bulk=False)
    await _settle(store, fills, indexes[middle:], committed, refused, bulk=False)
