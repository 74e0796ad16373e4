"""Reusable training objectives (the *what* of training).

A :class:`~genarch.protocols.TrainingObjective` names the modules that learn
(its players) and computes each one's loss on a batch; any
:class:`~genarch.protocols.Optimizer` — :class:`~genarch.training.ObjectiveOptimizer`
or the :class:`~genarch.training.Trainer` — turns that into updates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F  # noqa: N812

from genarch.errors import ConfigError, InvalidInputError
from genarch.validation import describe

__all__ = [
    "LanguageModeling",
    "MeasuredLoss",
    "MeasuringObjective",
    "NextTokenLossModel",
    "next_token_loss",
]


@dataclass(frozen=True)
class MeasuredLoss:
    """A player's loss on a batch and what was measured on the way, for the step's log.

    Attributes:
        loss: the scalar loss to back-propagate.
        metrics: plain floats (reward margins, an accuracy, a KL estimate);
            the optimizer reports them as ``"<player>/<name>"`` in
            :attr:`StepReport.metrics <genarch.schemas.StepReport.metrics>`,
            averaged over micro-batches with the same weights as the loss.
    """

    loss: torch.Tensor
    metrics: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class MeasuringObjective(Protocol):
    """An objective that also reports metrics of each loss it computes.

    :class:`~genarch.training.ObjectiveOptimizer` calls ``measured_loss``
    instead of ``loss`` when an objective has it, so the metrics come from the
    very forward pass that gave the loss (no second pass, no state kept in the
    objective between calls).
    """

    def measured_loss(self, player: str, batch: Any) -> MeasuredLoss: ...


@runtime_checkable
class NextTokenLossModel(Protocol):
    """A language model that computes its own next-token loss (genarch's ``GPT`` does:
    chunk by chunk, without holding every logit at once).

    :class:`LanguageModeling` calls ``loss`` on such a model instead of
    computing the cross-entropy from its logits. Training stays independent of
    any model family: it knows this method, not the class.
    """

    def loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, /, *, label_smoothing: float = 0.0
    ) -> torch.Tensor: ...


def next_token_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (B, T, V) against ``targets`` (B, T).

    Label smoothing moves ``label_smoothing`` of each target's probability mass
    evenly onto the whole vocabulary — a regulariser against over-confidence.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        label_smoothing=label_smoothing,
    )


class LanguageModeling:
    """Next-token prediction for any module that maps token ids to logits.

    A batch is an integer tensor of shape ``(B, T + 1)``: the model reads the
    first ``T`` tokens of each row and is scored on predicting the last ``T``.
    The model must map ``(B, T)`` token ids to ``(B, T, V)`` logits. A
    :class:`~genarch.models.GPT` computes the loss itself (:meth:`GPT.loss
    <genarch.models.GPT.loss>`), with its output layer and the cross-entropy
    fused a chunk of rows at a time: the same value, far less memory traffic.

    Args:
        model: the language model, the only player (named ``"model"``).
        label_smoothing: in ``[0, 1)``; 0 is plain cross-entropy.

    Examples:
        >>> import torch
        >>> from genarch.training import ObjectiveOptimizer, adamw
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = torch.nn.Sequential(torch.nn.Embedding(8, 16), torch.nn.Linear(16, 8))
        >>> objective = LanguageModeling(model)
        >>> batch = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7]] * 4)
        >>> opt = ObjectiveOptimizer(objective, optimizer=adamw(0.05))
        >>> first = opt.step(batch).losses["model"]
        >>> for _ in range(30): last = opt.step(batch).losses["model"]
        >>> last < first / 4
        True
    """

    def __init__(self, model: torch.nn.Module, *, label_smoothing: float = 0.0) -> None:
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"LanguageModeling needs a torch.nn.Module, got {describe(model)}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.model = model
        self.label_smoothing = label_smoothing

    def players(self) -> Mapping[str, torch.nn.Module]:
        """The one player: ``{"model": model}``."""
        return {"model": self.model}

    def loss(self, player: str, batch: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy over the batch.

        Raises:
            InvalidInputError: the player is not ``"model"``, or the batch is
                not an integer tensor of shape ``(B, T + 1)`` with ``T >= 1``,
                or the model does not return ``(B, T, V)`` logits.
        """
        if player != "model":
            raise InvalidInputError(f"LanguageModeling has one player, 'model'; got {player!r}")
        if (
            not isinstance(batch, torch.Tensor)
            or batch.ndim != 2
            or batch.shape[1] < 2
            or batch.dtype.is_floating_point
            or batch.dtype.is_complex
            or batch.dtype == torch.bool
        ):
            shown = (
                f"a {batch.dtype} tensor of shape {tuple(batch.shape)}"
                if isinstance(batch, torch.Tensor)
                else describe(batch)
            )
            raise InvalidInputError(
                f"LanguageModeling expects token ids as an integer tensor of shape (B, T + 1) "
                f"with T >= 1; got {shown}"
            )
        inputs, targets = batch[:, :-1], batch[:, 1:]
        if isinstance(self.model, NextTokenLossModel):
            return self.model.loss(inputs, targets.long(), label_smoothing=self.label_smoothing)
        try:
            logits = self.model(inputs)
        except IndexError as error:  # an id outside the embedding table
            raise InvalidInputError(f"a token id is out of the model's range: {error}") from None
        if not isinstance(logits, torch.Tensor) or logits.shape[:2] != inputs.shape:
            found = tuple(logits.shape) if isinstance(logits, torch.Tensor) else describe(logits)
            raise InvalidInputError(
                f"the model must map ids of shape {tuple(inputs.shape)} to logits (B, T, V); "
                f"it returned {found}"
            )
        return next_token_loss(logits, targets.long(), label_smoothing=self.label_smoothing)

    def count_items(self, batch: torch.Tensor) -> int:
        """Tokens predicted in a batch: ``B * T``."""
        return int(batch.shape[0] * (batch.shape[1] - 1)) if isinstance(batch, torch.Tensor) else 0
