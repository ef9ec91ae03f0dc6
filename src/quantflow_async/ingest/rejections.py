"""What happens to a fill the database refused: it is counted in the writer's books, logged,
and handed to the caller's `on_reject`, which runs inside the writer's task."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

from quantflow_async.errors import FillRejected, InvalidValue
from quantflow_async.ingest.stats import Ledger

log = logging.getLogger(__name__)

RejectHandler = Callable[[FillRejected], None]


class Rejections:
    def __init__(self, ledger: Ledger, on_reject: RejectHandler | None) -> None:
        if on_reject is not None and _is_async_callable(on_reject):
            raise InvalidValue(
                "on_reject",
                "must be a plain function: it runs inside the writer's task, which must not "
                "wait on it; hand the rejection to a queue or task of your own from there",
            )
        self._ledger = ledger
        self._on_reject = on_reject

    def report(self, rejection: FillRejected) -> None:
        self._ledger.refused(rejection)
        log.warning("writer: %s", rejection)
        if self._on_reject is None:
            return
        try:
            self._on_reject(rejection)
        except Exception:
            log.exception("writer: the on_reject callback raised; the writer goes on")


def _is_async_callable(function: object) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004 - an async __call__ counts too
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)
