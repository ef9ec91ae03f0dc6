"""Closing a resource as the `async with` block around it is left."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


async def close_after_block(
    close: Callable[[], Awaitable[None]],
    block_error: object,
    failure: type[Exception],
    report: Callable[[], None],
) -> None:
    """Await `close()` as a block is left, `block_error` being what the block raised (None
    if nothing). A `failure` of the close is raised when the block raised nothing; when it
    did, the block's own error is the one that goes on, and `report()` logs the failure."""
    try:
        await close()
    except failure:
        if block_error is None:
            raise
        report()
