"""What a sweep has finished: each backtest's outcome stored once, counted, and reported to
the caller's progress callback. The local sweep (sweep_outcomes.py) and the sweep on a cluster
(cluster.py) both record their outcomes here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from quantflow_async.backtest.runner import mark_cancelled, mark_failed, record_completed
from quantflow_async.backtest.worker import Job
from quantflow_async.database import Database


@dataclass(frozen=True, slots=True)
class SweepProgress:
    """Where a sweep is: backtests finished (completed or failed) of `total`, and the
    sweep's own fills handed to the writer so far (committed by the time it returns).
    `sweep_id` is the stored sweep's id (to resume it by, if it is stopped)."""

    total: int
    done: int
    failed: int
    fills_stored: int
    sweep_id: int | None = None


ProgressCallback = Callable[[SweepProgress], None]


class SweepTally:
    """The finished backtests of a sweep's `jobs`, each stored once: completed, failed or
    cancelled."""

    def __init__(
        self,
        db: Database,
        jobs: list[Job],
        progress: ProgressCallback | None,
        sweep_id: int | None,
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.progress = progress
        self.sweep_id = sweep_id
        self.completed = 0
        self.failed = 0
        self.finished: set[int] = set()
        self._progress_raised = False

    async def record_completed(
        self, backtest_id: int, metrics: Mapping[str, Any], results: Mapping[str, Any]
    ) -> bool:
        """Store the backtest completed, unless it is finished already; whether it was stored."""
        if backtest_id in self.finished:
            return False
        await record_completed(self.db, backtest_id, metrics, results)
        self.completed += 1
        self.finished.add(backtest_id)
        return True

    async def record_failed(self, backtest_id: int, error: Mapping[str, Any]) -> bool:
        """Store the backtest failed with `error`, unless it is finished already; whether it
        was stored. One that never said it started (its worker died first) runs, then fails."""
        if backtest_id in self.finished:
            return False
        backtest = await self.db.backtests.get(backtest_id)
        if backtest.status == "pending":
            await self.db.backtests.set_status(backtest_id, "running")
        await mark_failed(self.db, backtest_id, error)
        self.failed += 1
        self.finished.add(backtest_id)
        return True

    async def record_cancelled(self, backtest_id: int) -> None:
        """Store the backtest cancelled (the cluster cancelled its task): finished, uncounted."""
        await mark_cancelled(self.db, [backtest_id])
        self.finished.add(backtest_id)

    def unfinished(self) -> list[int]:
        return [job.backtest_id for job in self.jobs if job.backtest_id not in self.finished]

    def report(self, fills_stored: int) -> None:
        """Call the progress callback, if any, with where the sweep is. Once it has raised
        (which stops the sweep), it is not called again."""
        if self.progress is None or self._progress_raised:
            return
        report = SweepProgress(
            total=len(self.jobs),
            done=self.completed + self.failed,
            failed=self.failed,
            fills_stored=fills_stored,
            sweep_id=self.sweep_id,
        )
        try:
            self.progress(report)
        except BaseException:
            # The sweep stops with this error. A second task may report before it is
            # cancelled: it must not call back and raise a second error.
            self._progress_raised = True
            raise
