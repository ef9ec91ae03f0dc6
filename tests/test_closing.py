"""Leaving an `async with` block: a failure to close is raised when the block raised nothing,
and logged instead when the block raised, so the block's own error is the one that goes on."""

from __future__ import annotations

import pytest

from quantflow_async.closing import close_after_block
from quantflow_async.errors import StorageError, WriterFailed


async def _failing_close() -> None:
    raise StorageError("the last batch could not be committed")


async def test_a_failed_close_is_raised_when_the_block_raised_nothing() -> None:
    reported: list[str] = []
    with pytest.raises(StorageError, match="could not be committed"):
        await close_after_block(_failing_close, None, StorageError, lambda: reported.append("x"))
    assert reported == []


async def test_a_failed_close_is_reported_not_raised_when_the_block_raised() -> None:
    reported: list[str] = []
    block_error = ValueError("the strategy raised")
    await close_after_block(
        _failing_close, block_error, StorageError, lambda: reported.append("close failed")
    )
    assert reported == ["close failed"]


async def test_a_close_failing_otherwise_is_raised_whatever_the_block_raised() -> None:
    with pytest.raises(StorageError):
        await close_after_block(_failing_close, ValueError("x"), WriterFailed, lambda: None)


async def test_a_clean_close_reports_nothing() -> None:
    reported: list[str] = []

    async def close() -> None:
        reported.append("closed")

    await close_after_block(close, ValueError("x"), StorageError, lambda: reported.append("!"))
    assert reported == ["closed"]
