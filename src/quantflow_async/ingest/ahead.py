"""Sending a batch ahead: while one batch is in flight, the writer may hand the store the next
one, so that the connection goes on to it without waiting for the event loop in between."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from quantflow_async.records import Fill

Ahead = tuple[Sequence[Fill], str, str | None]
"""A batch to send ahead: its fills, its token, and the token its transaction deletes."""

NextBatch = Callable[[], Ahead | None]
"""Asked by a store once a batch's request is on its way: the batch to send right behind it,
or None. A store that cannot pipeline never asks."""
