"""Exponential backoff for a writer's passing faults (busy, a lost connection, a stall)."""

from __future__ import annotations

from quantflow_async.config import WriterOptions


class Backoff:
    """Delays of `retry_initial_delay`, doubling up to `retry_max_delay`, `retry_attempts`
    times; `attempts` counts the retries handed out so far."""

    def __init__(self, options: WriterOptions) -> None:
        self._limit = options.retry_attempts
        self._delay = options.retry_initial_delay
        self._max_delay = options.retry_max_delay
        self.attempts = 0

    @property
    def exhausted(self) -> bool:
        return self.attempts >= self._limit

    def next_delay(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, self._max_delay)
        self.attempts += 1
        return delay
