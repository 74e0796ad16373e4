"""What training reports: one optimisation step, and a whole run."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from genarch.schemas._base import Record

__all__ = ["StepReport", "TrainingReport"]


class StepReport(Record):
    """What one optimisation step did.

    Attributes:
        step: the step number after this step (1 after the first step).
        losses: one loss per player, e.g. ``{"model": 2.3}`` or
            ``{"discriminator": 0.7, "generator": 1.2}``.
        metrics: anything else worth logging (accuracies, reward margins, ...).
        num_items: samples or tokens the step consumed, for throughput.
        skipped: the update was skipped (e.g. a non-finite loss).
    """

    step: Annotated[int, Field(ge=0)]
    losses: dict[str, float]
    metrics: dict[str, float] = Field(default_factory=dict)
    num_items: Annotated[int, Field(ge=0)] = 0
    skipped: bool = False


class TrainingReport(Record):
    """The outcome of a training run: curves, best step, throughput, wall time."""

    steps: int
    train_loss: tuple[float, ...]
    eval_loss: tuple[tuple[int, float], ...] = ()
    best_step: int | None = None
    best_metric: float | None = None
    items_per_second: float = 0.0
    wall_seconds: float = 0.0
    skipped_steps: int = 0
    stopped_because: str = "finished"
