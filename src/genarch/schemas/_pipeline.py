"""What a pipeline run reports: per-stage counts and timing."""

from __future__ import annotations

from genarch.errors import NotFoundError
from genarch.schemas._base import Record

__all__ = ["PipelineTrace", "StageTrace"]


class StageTrace(Record):
    """What one stage did during a run.

    Attributes:
        seconds: time spent inside this stage alone (upstream stages excluded).
        counters: whatever the stage reported (see :class:`~genarch.pipeline.ReportingProcessor`).
    """

    name: str
    component: str
    items_in: int
    items_out: int
    seconds: float
    counters: dict[str, int]


class PipelineTrace(Record):
    """Per-stage counts and timing of one run; ``finished`` once the input is exhausted."""

    stages: tuple[StageTrace, ...]
    finished: bool
    seconds: float

    def stage(self, name: str) -> StageTrace:
        """The trace of the stage called ``name``."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise NotFoundError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    def summary(self) -> str:
        """A small table, one line per stage."""
        lines = [f"{'stage':<16} {'in':>8} {'out':>8} {'seconds':>9}  counters"]
        for s in self.stages:
            counters = ", ".join(f"{k}={v}" for k, v in sorted(s.counters.items()))
            lines.append(
                f"{s.name:<16} {s.items_in:>8} {s.items_out:>8} {s.seconds:>9.3f}  {counters}"
            )
        return "\n".join(lines)
