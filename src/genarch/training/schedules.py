"""Learning-rate schedules as pure functions of the step number.

A schedule is a frozen :class:`Schedule` record; :func:`lr_factor` maps
``(schedule, step)`` to the multiplier applied to every parameter group's base
learning rate. Nothing is stored between calls, so a resumed run gets exactly
the learning rate the uninterrupted run would have had: the step number is the
whole state.

Shape of every schedule: a linear warm-up from ``1 / (warmup_steps + 1)`` to 1
over ``warmup_steps`` steps, then a decay towards ``min_factor`` by
``total_steps`` — cosine (as in nanoGPT and most LM recipes), linear, or none.

Example:
    >>> s = Schedule(warmup_steps=2, decay="cosine", total_steps=10, min_factor=0.1)
    >>> tuple(round(lr_factor(s, step), 3) for step in (0, 1, 2, 6, 10, 20))
    (0.333, 0.667, 1.0, 0.55, 0.1, 0.1)
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from genarch.schemas import Record

__all__ = ["Schedule", "lr_factor"]


class Schedule(Record):
    """A warm-up then decay learning-rate schedule.

    Attributes:
        warmup_steps: steps of linear warm-up (0: start at the full rate).
        decay: ``"cosine"``, ``"linear"`` or ``"constant"`` after warm-up.
        total_steps: the step at which the decay reaches ``min_factor``;
            ``None`` lets the trainer use its ``max_steps``.
        min_factor: the final learning rate as a fraction of the base rate.
    """

    warmup_steps: Annotated[int, Field(ge=0)] = 0
    decay: Literal["cosine", "linear", "constant"] = "constant"
    total_steps: Annotated[int, Field(ge=1)] | None = None
    min_factor: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0

    @model_validator(mode="after")
    def _warmup_fits(self) -> Self:
        if self.total_steps is not None and self.warmup_steps > self.total_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must not exceed total_steps ({self.total_steps})"
            )
        return self


def lr_factor(schedule: Schedule, step: int, total_steps: int | None = None) -> float:
    """The learning-rate multiplier for the update that follows ``step`` completed steps.

    Args:
        schedule: the schedule.
        step: completed steps so far (0 for the first update).
        total_steps: used when ``schedule.total_steps`` is ``None``; if both
            are ``None`` the decay never starts.

    Returns:
        A float in ``(0, 1]`` during warm-up and in ``[min_factor, 1]`` after.
    """
    if step < schedule.warmup_steps:
        return (step + 1) / (schedule.warmup_steps + 1)
    total = schedule.total_steps if schedule.total_steps is not None else total_steps
    if schedule.decay == "constant" or total is None:
        return 1.0
    span = max(total - schedule.warmup_steps, 1)
    progress = min(max(step - schedule.warmup_steps, 0) / span, 1.0)
    if schedule.decay == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return schedule.min_factor + (1.0 - schedule.min_factor) * shape
