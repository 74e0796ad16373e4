"""A short training run for the image models' examples: :func:`train_objective`.

One loop over the genarch :class:`~genarch.training.Trainer`'s ``step``, with
a step count and a wall-time budget, for the VAE, GAN and diffusion
objectives and the digits classifier. Longer runs use the
:class:`~genarch.training.Trainer` itself (checkpoints, evaluation, schedules).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from torch import Tensor

from genarch.errors import ConfigError
from genarch.schemas import TrainingReport

__all__ = ["train_objective"]

logger = logging.getLogger(__name__)


def train_objective(
    objective: Any,
    data: tuple[Tensor, ...] | Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    seconds: float | None = None,
    seed: int = 0,
    max_grad_norm: float | None = 1.0,
    log_every: int = 0,
) -> TrainingReport:
    """Train an objective with the genarch :class:`~genarch.training.Trainer` for
    ``steps`` steps or ``seconds`` of wall time, whichever ends first.

    The batch of step ``k`` is a pure function of ``(seed, k)`` (the trainer's
    data order), and each step's randomness is seeded from ``(seed, k)`` by the
    trainer, so a run is reproducible when it is bounded by ``steps``.

    Raises:
        ConfigError: non-positive steps, batch size or time budget.
    """
    from genarch.training import Trainer
    from genarch.training.data import IndexedData

    if steps < 1 or batch_size < 1 or (seconds is not None and seconds <= 0):
        raise ConfigError(
            f"need steps >= 1, batch_size >= 1 and a positive time budget, "
            f"got steps={steps}, batch_size={batch_size}, seconds={seconds}"
        )
    source = IndexedData(data)
    batch_size = min(batch_size, len(source))
    trainer = Trainer(
        objective,
        max_steps=steps,
        batch_size=batch_size,
        optimizer={"learning_rate": learning_rate, "betas": betas},
        max_grad_norm=max_grad_norm,
        seed=seed,
        progress=False,
    )
    started = time.perf_counter()
    losses: list[float] = []
    first_player = next(iter(objective.players()))
    while trainer.step_count < steps:
        indices, _, _ = source.train_indices(trainer.step_count, batch_size, seed)
        report = trainer.step(source.take(indices))
        losses.append(report.losses[first_player])
        if log_every and report.step % log_every == 0:
            logger.info("step %d: %s", report.step, report.losses)
        if seconds is not None and time.perf_counter() - started > seconds:
            break
    wall = time.perf_counter() - started
    return TrainingReport(
        steps=trainer.step_count,
        train_loss=tuple(losses),
        items_per_second=trainer.step_count * batch_size / wall if wall > 0 else 0.0,
        wall_seconds=wall,
        stopped_because="finished" if trainer.step_count >= steps else "time_budget",
    )
