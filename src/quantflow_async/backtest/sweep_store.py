"""Where a sweep's jobs are stored before they run: a new sweep with all its pending backtests
in one transaction, or, to resume a sweep, the jobs that did not complete stored again.

Resuming replaces each job that did not complete (pending, running, cancelled or failed) by
a new pending backtest, deleting the old one with its fills in the same transaction: a job
stopped halfway leaves no fill behind, and a completed job is never run again.
`run_sweep` (sweep.py) and `run_sweep_on_cluster` (cluster.py) both store their jobs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import anyio

from quantflow_async.backtest.runner import mark_cancelled
from quantflow_async.backtest.sweep_jobs import PlannedJob, SweepPlan, check_resumable
from quantflow_async.backtest.worker import Job
from quantflow_async.database import Database
from quantflow_async.errors import InvalidValue, QuantFlowError
from quantflow_async.sweep_records import SweepStatus

log = logging.getLogger(__name__)

_T = TypeVar("_T")
CLEANUP_SECONDS: Final = 30.0
"""How long marking a stopped sweep may take, shielded from what stopped it."""


@dataclass(frozen=True, slots=True)
class StoredJobs:
    """A sweep ready to run: its id, the jobs to run now, every job's backtest id in job
    order, and how many of its jobs had completed before (never run again)."""

    sweep_id: int
    jobs: list[Job]
    backtest_ids: tuple[int, ...]
    skipped: int


async def store_sweep(
    db: Database, plan: SweepPlan, *, strategy_id: int, name: str | None, resume: int | None
) -> StoredJobs:
    """Store a new sweep and its jobs (`resume` None), or the jobs of sweep `resume` that did
    not complete, after checking that `plan` is that sweep (InvalidValue otherwise). If the
    storing is stopped (cancelled, Ctrl-C, a timeout), what it stored is marked cancelled and
    the sweep interrupted before it raises: nothing is left pending."""
    if resume is None:
        rows = [job.row(plan.datasets[job.data], name) for job in plan.jobs]
        created = db.sweeps.create(
            strategy_id=strategy_id, strategy=plan.strategy, space=plan.space,
            constraints=plan.constraints, options=plan.options,
            datasets=plan.dataset_documents(), name=name, jobs=rows,
        )  # fmt: skip
        sweep, ids = await _stored(db, created, lambda done: (done[0].id, done[1]))
        jobs = [_job(planned, i, strategy_id) for planned, i in zip(plan.jobs, ids, strict=True)]
        return StoredJobs(sweep.id, jobs, tuple(ids), 0)
    sweep = await db.sweeps.get(resume)
    check_resumable(plan, sweep, strategy_id)
    stored = await db.sweeps.jobs(resume)
    keys = {job.key for job in plan.jobs}
    strangers = [key for key in stored if key not in keys]
    if strangers:
        raise InvalidValue(
            "grid",
            f"{len(strangers)} of sweep {resume}'s backtests are not among these configs: "
            "resume it with the grid, constraint and options it ran with",
        )
    completed = {key for key, (_, status) in stored.items() if status == "completed"}
    to_run = [job for job in plan.jobs if job.key not in completed]
    rows = [job.row(plan.datasets[job.data], name) for job in to_run]
    new_ids = await _stored(db, db.sweeps.store_jobs(resume, rows), lambda ids: (resume, ids))
    ids_by_key = {key: backtest_id for key, (backtest_id, _) in stored.items()}
    ids_by_key.update(zip((job.key for job in to_run), new_ids, strict=True))
    log.info("sweep %d: %d jobs completed before, %d to run", resume, len(completed), len(to_run))
    return StoredJobs(
        resume,
        [_job(job, ids_by_key[job.key], strategy_id) for job in to_run],
        tuple(ids_by_key[job.key] for job in plan.jobs),
        len(plan.jobs) - len(to_run),
    )


async def store_more_jobs(
    db: Database, sweep_id: int, plan: SweepPlan, *, strategy_id: int, name: str | None
) -> list[Job]:
    """Store `plan`'s jobs as pending backtests of sweep `sweep_id`, in one transaction (one
    of the same key that did not complete is replaced, with its fills): a search's next
    trials. If the storing is stopped, what it stored is marked cancelled before it raises."""
    rows = [job.row(plan.datasets[job.data], name) for job in plan.jobs]
    ids = await _stored(db, db.sweeps.store_jobs(sweep_id, rows), lambda ids: (sweep_id, ids))
    return [_job(job, i, strategy_id) for job, i in zip(plan.jobs, ids, strict=True)]


async def finish_sweep(
    db: Database, sweep_id: int, status: SweepStatus, unfinished: Sequence[int] = ()
) -> None:
    """Mark `unfinished` backtests cancelled and the sweep `status`, shielded; a store that
    fails meanwhile is logged (the sweep then stays as it was, and can be resumed)."""
    if unfinished:
        await mark_cancelled(db, list(unfinished))
    with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
        try:
            await db.sweeps.set_status(sweep_id, status)
        except QuantFlowError as exc:
            log.error("sweep %d could not be marked %s: %s", sweep_id, status, exc)


def _job(planned: PlannedJob, backtest_id: int, strategy_id: int) -> Job:
    return Job(backtest_id, strategy_id, planned.spec, planned.data)


async def _stored(
    db: Database,
    storing: Awaitable[_T],
    stored_ids: Callable[[_T], tuple[int, Sequence[int]]],
) -> _T:
    """What `storing` gives. If the wait is stopped, the transaction may have committed all
    the same: it is waited for, and what it stored is marked cancelled, the sweep
    interrupted, before the stop goes on."""
    task = asyncio.ensure_future(storing)
    try:
        return await asyncio.shield(task)
    except BaseException:
        # asyncio's own Task.cancel() (a timeout, Ctrl-C) passes through anyio's shields.
        with contextlib.suppress(Exception):  # the store failed: nothing was stored
            sweep_id, ids = stored_ids(await _finished(task))
            await finish_sweep(db, sweep_id, "interrupted", ids)
        raise


async def _finished(task: asyncio.Future[_T]) -> _T:
    """What `task` gives, waited for however often the waiting task is cancelled."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    return task.result()
