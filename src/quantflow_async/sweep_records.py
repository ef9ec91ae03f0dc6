"""A stored sweep as read back: `Sweep`, what it ran and where it stands, and `SweepStatus`.

A sweep is the durable record of a study: one strategy over a grid (or a search space) of
parameters and one or more data sets, each backtest of it linked by its job key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias, get_args

from quantflow_async.json_values import JsonArray, freeze_fields, frozen_json

SweepKind: TypeAlias = Literal["grid", "search"]
SweepStatus: TypeAlias = Literal["running", "completed", "interrupted"]

SWEEP_KINDS: Final[tuple[SweepKind, ...]] = get_args(SweepKind)
SWEEP_STATUSES: Final[tuple[SweepStatus, ...]] = get_args(SweepStatus)


@dataclass(frozen=True, slots=True)
class Sweep:
    """A stored sweep: its strategy, space, constraint, options and data sets, and its status.

    `kind` is "grid" (every config of `space`) or "search" (trials drawn from `space`);
    `constraints` is the expression that kept configs ("fast < slow"), or a callable's name.
    `options` are the run options every backtest of it shares (cash, commission, ...).
    `datasets` lists each data set as {"name", "source", "bars", "fingerprint"}: the
    fingerprint is a hash of the bars' contents, checked again on resume. `status` is
    "running" (or its process died), "interrupted" (stopped: resumable), or "completed"
    (every backtest finished, completed or failed). JSON fields are read-only.
    """

    id: int
    strategy_id: int
    strategy: str
    kind: SweepKind
    name: str | None
    space: Any
    constraints: str | None
    options: Mapping[str, Any]
    datasets: Sequence[Mapping[str, Any]]
    status: SweepStatus
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    def __post_init__(self) -> None:
        freeze_fields(self, "options")
        if not isinstance(self.datasets, JsonArray):
            object.__setattr__(self, "datasets", JsonArray(self.datasets))
        object.__setattr__(self, "space", frozen_json(self.space))

    def fingerprints(self) -> dict[str, str]:
        """Each data set's content fingerprint by its name."""
        return {str(d["name"]): str(d["fingerprint"]) for d in self.datasets}


@dataclass(frozen=True, slots=True)
class SweepSummary:
    """A sweep with how many of its backtests are in each status (`sweeps list`)."""

    sweep: Sweep
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())
