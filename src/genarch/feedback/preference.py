"""Preference optimisation: DPO, IPO and conservative DPO against a frozen reference model.

A :class:`PreferenceOptimization` is a :class:`~genarch.protocols.TrainingObjective`
with one player, the ``policy``; the ``reference`` beside it is frozen (eval
mode, no gradients, never a player) and checked to stay so. Both are any
causal language model mapping token ids ``(B, T)`` to logits ``(B, T, V)`` —
genarch's :class:`~genarch.models.GPT` or a module of your own.

The batch (:class:`PreferenceBatch`, :func:`preference_batch`), the sequence
log-probabilities (:func:`sequence_log_probs`) and the papers' losses
(:func:`preference_losses`: DPO, conservative DPO, IPO) live in
:mod:`genarch.feedback.preference_formulas` and are re-exported here.

Each step also reports (as ``policy/<name>`` in the step's metrics) the
implicit rewards ``β (log π(y) - log π_ref(y))`` of the chosen and rejected
responses, their margin, the share of pairs whose chosen reward is higher
(ties count one half), and ``kl``: the mean over the chosen responses' tokens
of ``log π(token) - log π_ref(token)``. That is the plain (``k1``) Monte-Carlo
estimate of ``KL(π ‖ π_ref)`` per token, evaluated on the preference data
rather than on samples of ``π``: it is 0 at the start, grows as the policy
moves away, and is an estimate, not a bound (it can be negative).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Self

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field, model_validator
from torch import Tensor

from genarch.configured import Configured
from genarch.errors import ConfigError, InvalidInputError
from genarch.feedback.preference_formulas import (
    PreferenceBatch,
    PreferenceLoss,
    _score,
    _SequenceScores,
    preference_batch,
    preference_losses,
    sequence_log_probs,
)
from genarch.schemas import Config
from genarch.training.objectives import MeasuredLoss
from genarch.validation import describe

__all__ = [  # the batch and the formulas are re-exported from preference_formulas
    "PreferenceBatch",
    "PreferenceOptimization",
    "PreferenceOptimizationConfig",
    "freeze_reference",
    "preference_batch",
    "preference_losses",
    "sequence_log_probs",
]


# ------------------------------------------------------------------------ the objective


class PreferenceOptimizationConfig(Config):
    """Which preference loss to optimise, and how strongly to stay near the reference.

    Attributes:
        loss: ``"dpo"``, ``"cdpo"`` (conservative DPO: DPO with label
            smoothing) or ``"ipo"``.
        beta: the strength of the pull towards the reference (DPO's β; IPO's τ).
        label_smoothing: ``"cdpo"``'s ε, the assumed share of flipped labels,
            in ``(0, 0.5)``; must be 0 for ``"dpo"`` and ``"ipo"``.
    """

    loss: PreferenceLoss = "dpo"
    beta: Annotated[float, Field(gt=0.0)] = 0.1
    label_smoothing: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.0

    @model_validator(mode="after")
    def _smoothing_fits_loss(self) -> Self:
        if self.loss == "cdpo" and self.label_smoothing == 0.0:
            raise ValueError("loss 'cdpo' needs label_smoothing in (0, 0.5)")
        if self.loss != "cdpo" and self.label_smoothing != 0.0:
            raise ValueError(f"label_smoothing is cdpo's; loss {self.loss!r} needs 0")
        return self


def freeze_reference(policy: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of ``policy`` to serve as the reference: eval mode, no gradients.

    Raises:
        InvalidInputError: ``policy`` is not a ``torch.nn.Module``.
    """
    if not isinstance(policy, torch.nn.Module):
        raise InvalidInputError(f"freeze_reference needs a torch.nn.Module, got {describe(policy)}")
    reference = copy.deepcopy(policy)
    reference.eval()
    reference.requires_grad_(False)
    return reference


def _hold_reference(policy: torch.nn.Module, reference: torch.nn.Module) -> None:
    """Check that ``policy`` and ``reference`` are separate modules; freeze the reference."""
    for name, module in (("policy", policy), ("reference", reference)):
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(f"{name} must be a torch.nn.Module, got {describe(module)}")
    if policy is reference:
        raise ConfigError("policy and reference are the same module; pass freeze_reference(policy)")
    shared = {id(p) for p in policy.parameters()} & {id(p) for p in reference.parameters()}
    if shared:
        raise ConfigError(
            f"policy and reference share {len(shared)} parameter tensors; the reference "
            "must be a separate frozen copy (freeze_reference(policy))"
        )
    reference.eval()
    reference.requires_grad_(False)


def _check_frozen(reference: torch.nn.Module) -> None:
    if reference.training or any(p.requires_grad for p in reference.parameters()):
        raise ConfigError(
            "the reference model must stay frozen (eval mode, requires_grad False); "
            "something unfroze it — it is not a player and gets no update"
        )


class PreferenceOptimization(Configured[PreferenceOptimizationConfig]):
    """DPO, conservative DPO or IPO of a ``policy`` against a frozen ``reference``.

    The one player is ``"policy"``. The reference is put in eval mode with
    gradients off here, and every loss checks it is still so (it is not a
    player: it gets no update). A batch is a :class:`PreferenceBatch`.

    Args:
        policy: the causal LM being trained (``(B, T)`` ids → ``(B, T, V)`` logits).
        reference: the frozen model the policy is pulled towards, usually
            :func:`freeze_reference` of the policy before training; it may not
            share parameters with the policy.
        config: a :class:`PreferenceOptimizationConfig`; keyword arguments are
            shorthand for its fields.

    Raises:
        ConfigError: not modules, the same module twice, shared parameters, or
            an invalid config.

    Example:
        >>> from genarch.data import ByteTokenizer
        >>> from genarch.models import GPT
        >>> from genarch.schemas import Preference
        >>> from genarch.training import ObjectiveOptimizer, adamw
        >>> _ = torch.manual_seed(0)
        >>> policy = GPT(vocab_size=256, context_length=16, n_layer=1, n_head=2, n_embd=16)
        >>> dpo = PreferenceOptimization(policy, freeze_reference(policy), beta=0.5)
        >>> pairs = [Preference(prompt="Hi", chosen="yes.", rejected="yes!")]
        >>> batch = preference_batch(pairs, ByteTokenizer(), max_len=16)
        >>> report = ObjectiveOptimizer(dpo, optimizer=adamw(0.01)).step(batch)
        >>> round(report.losses["policy"], 4), report.metrics["policy/kl"]
        (0.6931, 0.0)
    """

    def __init__(
        self,
        policy: torch.nn.Module,
        reference: torch.nn.Module,
        config: PreferenceOptimizationConfig | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        _hold_reference(policy, reference)
        self.policy = policy
        self.reference = reference

    def players(self) -> Mapping[str, torch.nn.Module]:
        """The one player, ``{"policy": policy}``; the reference is held, never updated."""
        return {"policy": self.policy}

    def loss(self, player: str, batch: PreferenceBatch | Mapping[str, Tensor]) -> Tensor:
        """The mean preference loss over the batch's pairs.

        Raises:
            InvalidInputError: another player, a batch that is not a
                :class:`PreferenceBatch`, or logits of the wrong shape.
            ConfigError: the reference was unfrozen (training mode or a
                parameter that requires grad).
        """
        return self.measured_loss(player, batch).loss

    def measured_loss(
        self, player: str, batch: PreferenceBatch | Mapping[str, Tensor]
    ) -> MeasuredLoss:
        """The loss and the step's metrics (rewards, margin, accuracy, KL) from one pass."""
        if player != "policy":
            raise InvalidInputError(
                f"PreferenceOptimization has one player, 'policy'; got {player!r}"
            )
        batch = PreferenceBatch.of(batch)
        _check_frozen(self.reference)
        both = _stack(batch)
        policy = _score(self.policy, both.ids, both.mask)
        with torch.no_grad():
            reference = _score(self.reference, both.ids, both.mask)
        rows = batch.num_pairs
        cfg = self.config
        losses = preference_losses(
            policy.log_probs[:rows],
            policy.log_probs[rows:],
            reference.log_probs[:rows],
            reference.log_probs[rows:],
            loss=cfg.loss,
            beta=cfg.beta,
            label_smoothing=cfg.label_smoothing,
        )
        return MeasuredLoss(losses.mean(), _metrics(policy, reference, rows, cfg.beta))

    def metrics(self, batch: PreferenceBatch | Mapping[str, Tensor]) -> dict[str, float]:
        """The loss and metrics on held-out pairs, in eval mode and without gradients.

        Keys: ``loss``, ``reward_chosen``, ``reward_rejected``, ``reward_margin``,
        ``reward_accuracy`` (ties count one half) and ``kl`` (see the module docstring).
        """
        mode = self.policy.training
        try:
            self.policy.eval()
            with torch.no_grad():
                measured = self.measured_loss("policy", batch)
        finally:
            self.policy.train(mode)
        return {"loss": float(measured.loss), **measured.metrics}

    def count_items(self, batch: object) -> int:
        """Pairs in a batch."""
        try:
            return PreferenceBatch.of(batch).num_pairs
        except InvalidInputError:
            return 0


@dataclass(frozen=True)
class _Stacked:
    ids: Tensor  # (2B, T): chosen rows, then rejected rows
    mask: Tensor


def _stack(batch: PreferenceBatch) -> _Stacked:
    """Chosen and rejected rows in one ``(2B, T)`` tensor: one forward pass per model."""
    width = max(batch.chosen.shape[1], batch.rejected.shape[1])

    def pad(t: Tensor) -> Tensor:
        return F.pad(t, (0, width - t.shape[1]))

    return _Stacked(
        ids=torch.cat([pad(batch.chosen), pad(batch.rejected)]).long(),
        mask=torch.cat([pad(batch.chosen_mask), pad(batch.rejected_mask)]),
    )


def _metrics(
    policy: _SequenceScores, reference: _SequenceScores, rows: int, beta: float
) -> dict[str, float]:
    with torch.no_grad():
        rewards = beta * (policy.log_probs - reference.log_probs)
        chosen, rejected = rewards[:rows], rewards[rows:]
        wins = (chosen > rejected).to(rewards.dtype) + 0.5 * (chosen == rejected).to(rewards.dtype)
        log_ratio = policy.log_probs[:rows] - reference.log_probs[:rows]
        kl = log_ratio.sum() / policy.tokens[:rows].sum()
        return {
            "reward_chosen": float(chosen.mean()),
            "reward_rejected": float(rejected.mean()),
            "reward_margin": float((chosen - rejected).mean()),
            "reward_accuracy": float(wins.mean()),
            "kl": float(kl),
        }
