"""Held-out figures of a global model, for :func:`~genarch.federated.federated_train`'s ``evaluate``.

Each is a small callable object holding the held-out data: call it with a
model, get named floats. :func:`~genarch.federated.federated_train` calls it
in eval mode without gradients, before training and after every round.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

from genarch.errors import InvalidInputError
from genarch.training import LanguageModeling
from genarch.validation import describe, require_count

__all__ = ["ClassificationMetrics", "LanguageModelMetrics"]


class ClassificationMetrics:
    """Accuracy and mean cross-entropy of a classifier on held-out examples.

    Args:
        inputs: ``(N, ...)`` float tensor the model maps to ``(N, classes)`` logits.
        labels: ``(N,)`` integer labels.
        batch_size: examples per forward pass.

    Raises:
        InvalidInputError: not tensors, empty, or of different lengths.

    Examples:
        >>> model = torch.nn.Linear(2, 2)
        >>> sorted(ClassificationMetrics(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))(model))
        ['accuracy', 'loss']
    """

    def __init__(
        self, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 512
    ) -> None:
        if not (
            isinstance(inputs, torch.Tensor)
            and isinstance(labels, torch.Tensor)
            and labels.ndim == 1
            and inputs.shape[:1] == labels.shape
            and labels.numel() > 0
        ):
            raise InvalidInputError(
                "ClassificationMetrics expected (N, ...) inputs and (N,) labels with N >= 1, "
                f"got {describe(inputs)} and {describe(labels)}"
            )
        self.inputs, self.labels = inputs, labels.long()
        self.batch_size = require_count(batch_size, "ClassificationMetrics", "batch_size")

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """``{"accuracy": share correct, "loss": mean cross-entropy}``."""
        correct, total_loss = 0, 0.0
        with torch.no_grad():
            for start in range(0, len(self.labels), self.batch_size):
                logits = model(self.inputs[start : start + self.batch_size])
                labels = self.labels[start : start + self.batch_size]
                correct += int((logits.argmax(dim=1) == labels).sum())
                total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        count = len(self.labels)
        return {"accuracy": correct / count, "loss": total_loss / count}


class LanguageModelMetrics:
    """Mean next-token loss and perplexity of a language model on held-out token blocks.

    Args:
        blocks: ``(B, T + 1)`` integer token ids (see :func:`~genarch.training.token_blocks`).
        batch_size: blocks per forward pass.

    Raises:
        InvalidInputError: not a 2-D integer tensor with ``T >= 1`` and ``B >= 1``.
    """

    def __init__(self, blocks: torch.Tensor, *, batch_size: int = 64) -> None:
        if not (
            isinstance(blocks, torch.Tensor)
            and blocks.ndim == 2
            and blocks.shape[0] >= 1
            and blocks.shape[1] >= 2
            and not blocks.dtype.is_floating_point
        ):
            raise InvalidInputError(
                f"LanguageModelMetrics expected (B, T + 1) integer token blocks, got {describe(blocks)}"
            )
        self.blocks = blocks
        self.batch_size = require_count(batch_size, "LanguageModelMetrics", "batch_size")

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """``{"loss": mean next-token cross-entropy (nats), "perplexity": exp(loss)}``."""
        objective = LanguageModeling(model)
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(self.blocks), self.batch_size):
                batch = self.blocks[start : start + self.batch_size]
                total += float(objective.loss("model", batch)) * len(batch)
        loss = total / len(self.blocks)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}
