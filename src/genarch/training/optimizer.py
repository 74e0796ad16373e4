"""The reference :class:`~genarch.protocols.Optimizer`: one step over any objective.

:class:`ObjectiveOptimizer` steps a :class:`~genarch.protocols.TrainingObjective`
— the *what* (players and their losses) — with ordinary torch optimizers — the
*how*. One player (a language model, a VAE, a diffusion denoiser, a DPO policy
beside its frozen reference) or several in turn (a GAN's discriminator, then its
generator) use the same loop.

Randomness inside a step (dropout, noise, timesteps) is drawn from torch's
global generator, re-seeded from ``(seed, step)`` for the duration of the step
and restored afterwards. So a step's randomness depends only on the seed and
the step number: runs are reproducible, and resuming from a checkpoint is exact
without saving any RNG state beyond those two numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import torch

from genarch.errors import ConfigError, IntegrityError, InvalidInputError
from genarch.protocols import TrainingObjective
from genarch.schemas import StepReport

__all__ = ["ObjectiveOptimizer", "adamw"]

Batch = TypeVar("Batch")

OptimizerFactory = Callable[[str, list[torch.nn.Parameter]], torch.optim.Optimizer]


def adamw(learning_rate: float = 1e-3, weight_decay: float = 0.0) -> OptimizerFactory:
    """A factory giving each player its own ``torch.optim.AdamW``.

    Raises:
        ConfigError: a negative learning rate or weight decay.
    """
    if not learning_rate > 0:
        raise ConfigError(f"learning_rate must be positive, got {learning_rate}")
    if weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")

    def make(player: str, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)

    return make


def _step_seed(seed: int, step: int) -> int:
    # A splitmix-style mix so neighbouring steps get unrelated streams.
    z = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z ^= z >> 31
    return z & 0x7FFFFFFFFFFFFFFF


class ObjectiveOptimizer(Generic[Batch]):
    """Updates each player of an objective in turn, once per batch.

    Args:
        objective: what to optimise.
        optimizer: builds a torch optimizer per player (default :func:`adamw`).
        seed: seeds the per-step randomness (see the module docstring).
        max_grad_norm: clip each player's gradient norm to this, if given.
        count_items: how many samples/tokens a batch holds, for throughput.

    Example:
        >>> import torch
        >>> class Regression:
        ...     def __init__(self): self.model = torch.nn.Linear(1, 1)
        ...     def players(self): return {"model": self.model}
        ...     def loss(self, player, batch):
        ...         x, y = batch
        ...         return torch.nn.functional.mse_loss(self.model(x), y)
        >>> x = torch.linspace(-1, 1, 16).unsqueeze(1)
        >>> opt = ObjectiveOptimizer(Regression(), optimizer=adamw(0.1), seed=0)
        >>> first = opt.step((x, 3 * x)).losses["model"]
        >>> for _ in range(100): last = opt.step((x, 3 * x)).losses["model"]
        >>> last < first / 10
        True
    """

    def __init__(
        self,
        objective: TrainingObjective[Batch],
        *,
        optimizer: OptimizerFactory | None = None,
        seed: int = 0,
        max_grad_norm: float | None = None,
        count_items: Callable[[Batch], int] | None = None,
    ) -> None:
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be positive, got {max_grad_norm}")
        players = objective.players()
        if not players:
            raise ConfigError("the objective has no players to optimise")
        make = optimizer if optimizer is not None else adamw()
        self.objective = objective
        self.seed = seed
        self.max_grad_norm = max_grad_norm
        self.count_items = count_items
        self._step = 0
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        for name, module in players.items():
            trainable = [p for p in module.parameters() if p.requires_grad]
            if not trainable:
                raise ConfigError(f"player {name!r} has no trainable parameters")
            self._optimizers[name] = make(name, trainable)

    @property
    def step_count(self) -> int:
        """Steps taken so far."""
        return self._step

    def step(self, batch: Batch) -> StepReport:
        """Update every player once on ``batch``, in the objective's order.

        A non-finite loss skips that player's update and marks the report
        ``skipped``; the step still counts.

        Raises:
            InvalidInputError: the objective rejected the batch, or its loss is
                not a scalar tensor that requires grad.
        """
        players = self.objective.players()
        losses: dict[str, float] = {}
        skipped = False
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_step_seed(self.seed, self._step))
            for name, module in players.items():
                module.train()
                optimizer = self._optimizers[name]
                optimizer.zero_grad(set_to_none=True)
                loss = self.objective.loss(name, batch)
                if not isinstance(loss, torch.Tensor) or loss.ndim != 0 or not loss.requires_grad:
                    raise InvalidInputError(
                        f"the loss of player {name!r} must be a scalar tensor that requires grad, "
                        f"got {type(loss).__name__}"
                        + (
                            f" of shape {tuple(loss.shape)}"
                            if isinstance(loss, torch.Tensor)
                            else ""
                        )
                    )
                value = float(loss.detach())
                losses[name] = value
                if not math.isfinite(value):
                    skipped = True
                    optimizer.zero_grad(set_to_none=True)
                    continue
                loss.backward()  # type: ignore[no-untyped-call]
                if self.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(
                        [p for g in optimizer.param_groups for p in g["params"]], self.max_grad_norm
                    )
                optimizer.step()
        self._step += 1
        items = self.count_items(batch) if self.count_items is not None else 0
        return StepReport(step=self._step, losses=losses, num_items=items, skipped=skipped)

    def state_dict(self) -> dict[str, Any]:
        """Everything the next steps depend on: step, seed, player weights, optimizer moments."""
        return {
            "step": self._step,
            "seed": self.seed,
            "players": {n: m.state_dict() for n, m in self.objective.players().items()},
            "optimizers": {n: o.state_dict() for n, o in self._optimizers.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where the optimizer that produced ``state`` stopped.

        Raises:
            IntegrityError: the state belongs to an objective with other players.
        """
        players = self.objective.players()
        if not isinstance(state, Mapping) or set(state.get("players", {})) != set(players):
            found = sorted(state.get("players", {})) if isinstance(state, Mapping) else state
            raise IntegrityError(
                f"this state is for players {found}, but the objective has {sorted(players)}"
            )
        for name, module in players.items():
            try:
                module.load_state_dict(state["players"][name])
            except RuntimeError as error:
                raise IntegrityError(f"player {name!r}: the state does not fit: {error}") from None
            self._optimizers[name].load_state_dict(state["optimizers"][name])
        self._step = int(state["step"])
        self.seed = int(state["seed"])
