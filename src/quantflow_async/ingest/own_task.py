"""The TradeWriter's own task: in no task group, so its end, however it comes, cancels nothing
of its owner's; always run, and always waited for to the end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio


class OwnTask:
    """Runs `body` once in an asyncio task named `name`; `finished` is set when it has ended.

    asyncio's Task.cancel() that reaches the task before its first step closes its coroutine
    unrun, and nothing would ever end the body's work: the body then runs in a new task, after
    `never_ran` is called.
    """

    def __init__(
        self,
        body: Callable[[], Coroutine[Any, Any, None]],
        name: str,
        never_ran: Callable[[], None],
    ) -> None:
        self.finished = anyio.Event()
        self.task: asyncio.Task[None] | None = None
        """The task, until its owner has waited for it (then None)."""
        self._body = body
        self._name = name
        self._never_ran = never_ran
        self._began = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
        self.task.add_done_callback(self._restart_if_never_ran)

    async def _run(self) -> None:
        self._began = True
        try:
            await self._body()
        finally:
            self.finished.set()

    def _restart_if_never_ran(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() or self._began or self.finished.is_set():
            return
        self._never_ran()
        self.start()

    async def wait(self) -> None:
        """Return once the body has ended, waiting through cancellations: one that arrives
        meanwhile is raised after."""
        cancelled: BaseException | None = None
        while not self.finished.is_set():
            try:
                with anyio.CancelScope(shield=True):
                    await self.finished.wait()
            except anyio.get_cancelled_exc_class() as exc:
                # asyncio's own Task.cancel() passes through shields; the wait goes on, and
                # the cancellation is raised once it is done.
                cancelled = exc
        task = self.task
        if task is not None and task.done() and not task.cancelled():
            task.exception()  # the body's failure is the owner's to report: retrieved here
        if cancelled is not None:
            raise cancelled
