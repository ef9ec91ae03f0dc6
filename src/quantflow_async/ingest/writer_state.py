"""Where a TradeWriter is in its life, shared by its producers' side (writer.py) and its task
(batch_loop.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from quantflow_async.errors import WriterFailed


class Phase(enum.Enum):
    """A writer's phases, in the order they come; FAILED may come from OPEN or CLOSING."""

    NEW = "new"
    """Made, not entered: it accepts nothing yet."""
    OPENING = "opening"
    """Entered, its connection opening: it accepts nothing yet."""
    OPEN = "open"
    """Accepting fills."""
    CLOSING = "closing"
    """Closed (or its opening failed): it accepts nothing, and its queue drains."""
    FAILED = "failed"
    """The database could not take the fills: `failure` says why and holds them."""


@dataclass(slots=True)
class WriterState:
    """The phase, the failure once there is one, and the sequence numbers of the fills whose
    fate is known (`settled`) and that a flush waits for (`flush_target`)."""

    phase: Phase = Phase.NEW
    failure: WriterFailed | None = None
    settled: int = 0
    flush_target: int = 0

    @property
    def accepting(self) -> bool:
        return self.phase is Phase.OPEN

    @property
    def closing(self) -> bool:
        return self.phase is Phase.CLOSING

    def close(self) -> None:
        """Accept nothing more and drain; a failed writer stays failed."""
        if self.phase is not Phase.FAILED:
            self.phase = Phase.CLOSING

    def fail(self, failure: WriterFailed) -> None:
        self.phase = Phase.FAILED
        self.failure = failure
