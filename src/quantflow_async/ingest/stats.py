"""The writer's books: what was submitted, and where each fill went (stored, a duplicate
skipped, refused, or handed back), with commit and wait latencies."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from quantflow_async.errors import FillRejected

_LATENCY_SAMPLES = 10_000


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of a writer's counters. Latencies are in seconds; None before any sample.

    Once the writer has stopped, `submitted == written + duplicates + rejected + unwritten`.
    """

    submitted: int
    written: int
    duplicates: int
    rejected: int
    unwritten: int
    batches: int
    queue_depth: int
    commit_p50: float | None
    commit_p99: float | None
    wait_latency_p50: float | None
    wait_latency_p99: float | None


class Ledger:
    """Counts every fill into exactly one outcome; keeps the most recent refusals."""

    def __init__(self, max_rejected: int) -> None:
        self.submitted = 0
        self.written = 0
        self.duplicates = 0
        self.rejected_total = 0
        self.unwritten = 0
        self.batches = 0
        self.recent_rejections: deque[FillRejected] = deque(maxlen=max_rejected)
        self._commit_seconds: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self._wait_seconds: deque[float] = deque(maxlen=_LATENCY_SAMPLES)

    def committed(self, fills: int, inserted: int) -> None:
        self.written += inserted
        self.duplicates += fills - inserted

    def refused(self, rejection: FillRejected) -> None:
        self.rejected_total += 1
        self.recent_rejections.append(rejection)

    def batch_done(self, seconds: float) -> None:
        self.batches += 1
        self._commit_seconds.append(seconds)

    def waited(self, seconds: float) -> None:
        self._wait_seconds.append(seconds)

    def snapshot(self, queue_depth: int) -> WriterStats:
        commits = sorted(self._commit_seconds)
        waits = sorted(self._wait_seconds)
        return WriterStats(
            submitted=self.submitted,
            written=self.written,
            duplicates=self.duplicates,
            rejected=self.rejected_total,
            unwritten=self.unwritten,
            batches=self.batches,
            queue_depth=queue_depth,
            commit_p50=percentile(commits, 50),
            commit_p99=percentile(commits, 99),
            wait_latency_p50=percentile(waits, 50),
            wait_latency_p99=percentile(waits, 99),
        )


def percentile(ordered: list[float], percent: float) -> float | None:
    """The nearest-rank percentile of sorted samples, or None without samples."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))
    return ordered[index]
