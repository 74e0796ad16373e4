"""GRPO: group relative policy optimisation with a verifiable (programmatic) reward.

GRPO (Shao et al. 2024, "DeepSeekMath", §4.1, eqs. 3-4) trains a policy
without a value model. For each prompt ``q`` it samples a *group* of ``G``
completions ``o_1 … o_G`` from the current policy ``π_old``, scores each with
a reward ``r_i`` and uses the group-relative advantage
``A_i = (r_i - mean(r)) / (std(r) + eps)`` for every token of ``o_i``
(outcome supervision). The objective maximised is

``J = 1/G Σ_i 1/|o_i| Σ_t [ min(ratio_{i,t} A_i, clip(ratio_{i,t}, 1-ε, 1+ε) A_i) - β k3_{i,t} ]``

with ``ratio_{i,t} = π(o_{i,t} | q, o_{i,<t}) / π_old(o_{i,t} | q, o_{i,<t})`` and
the unbiased KL estimator of the paper's eq. 4,
``k3 = π_ref/π - log(π_ref/π) - 1`` (≥ 0), per token; :class:`GRPO`'s loss is
``-J`` averaged over the batch's completions (each group has ``G`` rows, so the
mean over rows is the mean over groups of the mean over the group).

The sampling happens outside the loss: :func:`grpo_batch` draws the groups
(seeded), scores them with any callable ``text -> float`` and stores ids,
response mask, per-token ``log π_old``, rewards and advantages in a
:class:`GRPOBatch`. ``std`` is the sample standard deviation (as TRL's
``GRPOTrainer``), so ``group_size`` is at least 2; a group of equal rewards has
zero advantages and only the KL term acts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field
from torch import Tensor

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.feedback.preference import _check_frozen, _hold_reference
from genarch.feedback.preference_formulas import (
    _not_integer,
    _shown,
    _TensorFields,
    _token_log_probs,
)
from genarch.feedback.reward import _finite_reward, candidate_seed
from genarch.models import TextGenerator
from genarch.protocols import Tokenizer
from genarch.schemas import Config
from genarch.training.objectives import MeasuredLoss
from genarch.validation import describe

__all__ = [
    "GRPO",
    "GRPOBatch",
    "GRPOConfig",
    "GRPOTerms",
    "grpo_advantages",
    "grpo_batch",
    "grpo_losses",
]


# --------------------------------------------------------------------------- the batch


@dataclass(frozen=True, eq=False)
class GRPOBatch(_TensorFields):
    """Sampled completions with what the GRPO loss needs from the moment they were drawn.

    Row ``i`` is prompt + completion, right-padded to ``T`` tokens; the rows of
    one group are consecutive. Like :class:`~genarch.feedback.PreferenceBatch`
    it is a read-only mapping of its fields, so the trainer can slice it by rows.

    Attributes:
        ids: ``(N, T)`` integer token ids.
        mask: ``(N, T)`` booleans, True exactly at the completion's tokens (never column 0).
        old_log_probs: ``(N, T)`` floats, ``log π_old`` of each completion token, 0 elsewhere.
        rewards: ``(N,)`` floats, the reward of each completion.
        advantages: ``(N,)`` floats, the group-relative advantage of each completion.

    Raises:
        InvalidInputError: a field of the wrong kind or shape, or a bad mask (names the field).
    """

    ids: Tensor
    mask: Tensor
    old_log_probs: Tensor
    rewards: Tensor
    advantages: Tensor

    def __post_init__(self) -> None:
        ids, mask = self.ids, self.mask
        if not isinstance(ids, Tensor) or ids.ndim != 2 or _not_integer(ids) or min(ids.shape) < 1:
            raise InvalidInputError(
                f"GRPOBatch.ids must be a (N, T) integer tensor, got {_shown(ids)}"
            )
        expected = {"mask": ids.shape, "old_log_probs": ids.shape}
        expected |= {"rewards": ids.shape[:1], "advantages": ids.shape[:1]}
        for name, shape in expected.items():
            value = getattr(self, name)
            kind_ok = isinstance(value, Tensor) and (
                value.dtype == torch.bool if name == "mask" else value.dtype.is_floating_point
            )
            if not kind_ok or value.shape != shape:
                kind = "bool" if name == "mask" else "floating-point"
                raise InvalidInputError(
                    f"GRPOBatch.{name} must be a {kind} tensor of shape {tuple(shape)}, "
                    f"got {_shown(value)}"
                )
        if bool(mask[:, 0].any()):
            raise InvalidInputError("GRPOBatch.mask marks the first token, which nothing predicts")
        empty = (~mask.any(dim=1)).nonzero()
        if empty.numel():
            raise InvalidInputError(f"GRPOBatch.mask: row {int(empty[0])} has no completion token")


# ------------------------------------------------------------------------ the formulas


def grpo_advantages(rewards: Tensor, group_size: int, *, eps: float = 1e-4) -> Tensor:
    """``(r - mean(r)) / (std(r) + eps)`` within each group of ``group_size`` consecutive rewards.

    ``std`` is the sample standard deviation. The advantages of a group sum to 0.

    Example:
        >>> grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 2, eps=0.0).tolist()
        [0.7071067690849304, -0.7071067690849304, -0.7071067690849304, 0.7071067690849304]
    """
    if not (isinstance(group_size, int) and group_size >= 2 and rewards.numel() % group_size == 0):
        raise InvalidInputError(
            f"group_size must be an int >= 2 dividing the {rewards.numel()} rewards, "
            f"got {group_size!r}"
        )
    grouped = rewards.reshape(-1, group_size)  # (groups, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    return (centred / (grouped.std(dim=1, keepdim=True) + eps)).reshape(-1)


@dataclass(frozen=True)
class GRPOTerms:
    """The per-completion loss and the per-token quantities it came from."""

    losses: Tensor  # (N,): -(token mean of the clipped surrogate - β k3)
    ratio: Tensor  # (N, T-1): ratio per token (1 where not a completion token)
    clipped: Tensor  # (N, T-1) bool: the clipped term is the smaller one (no gradient)
    kl: Tensor  # (N, T-1): k3 per token (0 where not a completion token)


def grpo_losses(
    log_probs: Tensor,
    old_log_probs: Tensor,
    ref_log_probs: Tensor,
    mask: Tensor,
    advantages: Tensor,
    *,
    clip_eps: float = 0.2,
    beta: float = 0.04,
) -> GRPOTerms:
    """The per-completion GRPO loss (the negated objective, see the module docstring).

    ``log_probs`` (``log π``, differentiable), ``old_log_probs`` (``log π_old``) and
    ``ref_log_probs`` (``log π_ref``) are ``(N, L)`` per-token log-probabilities, ``mask``
    ``(N, L)`` is True at the completions' tokens, ``advantages`` is ``(N,)``; ``clip_eps``
    is ``ε`` and ``beta`` is ``β``. Everything but ``log_probs`` is held constant.
    """
    scored = mask.to(log_probs.dtype)
    ratio = torch.exp((log_probs - old_log_probs.detach()) * scored)
    advantage = advantages.detach().to(log_probs.dtype)[:, None]
    unclipped = ratio * advantage
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantage
    surrogate = torch.minimum(unclipped, clipped)
    log_ref_over_pi = (ref_log_probs.detach() - log_probs) * scored
    k3 = torch.exp(log_ref_over_pi) - log_ref_over_pi - 1.0
    per_token = (surrogate - beta * k3) * scored
    losses = -per_token.sum(dim=1) / scored.sum(dim=1)
    return GRPOTerms(
        losses=losses, ratio=ratio, clipped=(clipped < unclipped) & mask, kl=k3 * scored
    )


# ------------------------------------------------------------------------ the sampling


def grpo_batch(
    policy: TextGenerator | torch.nn.Module,
    prompts: Sequence[str],
    reward_fn: Callable[[str], float],
    group_size: int,
    *,
    tokenizer: Tokenizer | None = None,
    max_new_tokens: int = 16,
    seed: int = 0,
    eps: float = 1e-4,
    pad_id: int = 0,
) -> GRPOBatch:
    """Sample ``group_size`` completions per prompt from ``policy`` and score them.

    Completions are drawn token by token from the policy's own distribution
    (temperature 1, the ``π_old`` of the objective) in eval mode without
    gradients; group ``k`` uses a ``torch.Generator`` seeded with
    :func:`~genarch.feedback.candidate_seed` ``(seed, k)``, so the batch is a
    function of the model, the prompts and ``seed``. Each completion has
    exactly ``max_new_tokens`` tokens; its text is ``tokenizer.decode`` of them.

    Args:
        policy: a :class:`~genarch.models.TextGenerator`, or a causal LM
            (``(B, T)`` ids → ``(B, T, V)`` logits) with ``tokenizer``.
        prompts: the prompts, each encoding to at least one token.
        reward_fn: any callable from completion text to a finite float.
        group_size: completions per prompt ``G``, at least 2.
        tokenizer: required when ``policy`` is a bare model.
        max_new_tokens: tokens per completion, at least 1.
        seed, eps, pad_id: the sampling seed, the std's ``eps``, the padding id.

    Raises:
        InvalidInputError: bad prompts, counts, a missing tokenizer, or a reward
            that is not a finite number (the message names the completion).
    """
    if isinstance(policy, TextGenerator):
        tokenizer = policy.tokenizer if tokenizer is None else tokenizer
    model = policy.model if isinstance(policy, TextGenerator) else policy
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(
            f"policy must be a TextGenerator or a torch.nn.Module, got {describe(policy)}"
        )
    if tokenizer is None:
        raise InvalidInputError("tokenizer is required when policy is a bare model")
    counts = {"group_size": (group_size, 2), "max_new_tokens": (max_new_tokens, 1)}
    for name, (value, least) in counts.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
            raise InvalidInputError(f"{name} must be an int >= {least}, got {value!r}")
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
        raise InvalidInputError(f"prompts must be a non-empty list of str, got {describe(prompts)}")
    encoded: list[list[int]] = []
    for index, prompt in enumerate(prompts):
        prompt_ids = tokenizer.encode(prompt) if isinstance(prompt, str) else []
        if not prompt_ids:
            raise InvalidInputError(f"prompts[{index}] must be text encoding to at least one token")
        encoded.append(prompt_ids)
    device = next(model.parameters()).device
    rows: list[Tensor] = []
    starts: list[int] = []
    mode = model.training
    try:
        model.eval()
        with torch.no_grad():
            for group, prompt_ids in enumerate(encoded):
                generator = torch.Generator(device=device).manual_seed(candidate_seed(seed, group))
                group_ids = torch.tensor([prompt_ids] * group_size, device=device)
                for _ in range(max_new_tokens):  # (G, t) -> (G, t + 1)
                    probs = model(group_ids)[:, -1].float().softmax(dim=-1)
                    drawn = torch.multinomial(probs, 1, generator=generator)
                    group_ids = torch.cat([group_ids, drawn], dim=1)
                rows.extend(group_ids)
                starts.extend([len(prompt_ids)] * group_size)
            width = max(len(row) for row in rows)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
            mask = torch.zeros((len(rows), width), dtype=torch.bool, device=device)
            for i, (row, start) in enumerate(zip(rows, starts, strict=True)):
                ids[i, : len(row)], mask[i, start : len(row)] = row, True
            old = F.pad(_token_log_probs(model, ids), (1, 0)) * mask  # (N, T), 0 at column 0
    finally:
        model.train(mode)
    rewards = [
        _finite_reward(
            reward_fn(tokenizer.decode(row[start:].tolist())),
            f"completion {i} (prompt {i // group_size})",
        )
        for i, (row, start) in enumerate(zip(rows, starts, strict=True))
    ]
    reward_tensor = torch.tensor(rewards, dtype=torch.float32, device=device)
    return GRPOBatch(
        ids=ids,
        mask=mask,
        old_log_probs=old,
        rewards=reward_tensor,
        advantages=grpo_advantages(reward_tensor, group_size, eps=eps),
    )


# ------------------------------------------------------------------------ the objective


class GRPOConfig(Config):
    """GRPO's two coefficients.

    Attributes:
        clip_eps: the clipping range ``ε`` of the ratio ``π/π_old`` (paper: 0.2).
        beta: the weight ``β`` of the per-token KL to the reference (paper: 0.04).
    """

    clip_eps: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    beta: Annotated[float, Field(ge=0.0)] = 0.04


class GRPO(Configured[GRPOConfig]):
    """GRPO of a ``policy`` against a frozen ``reference`` over :class:`GRPOBatch` es.

    The one player is ``"policy"``; the reference is frozen and checked to stay
    so. Each step reports, as ``policy/<name>``: ``reward_mean``, ``kl`` (mean
    ``k3`` per completion token, averaged like the loss), ``clip_fraction``
    (share of completion tokens whose clipped term is the smaller: no gradient)
    and ``ratio_mean``.

    Args:
        policy: the causal LM being trained (``(B, T)`` ids → ``(B, T, V)`` logits).
        reference: a separate frozen copy, usually
            :func:`~genarch.feedback.freeze_reference` of the policy.
        config: a :class:`GRPOConfig`; keyword arguments are shorthand for its fields.

    Raises:
        ConfigError: not modules, the same module twice, shared parameters, or an invalid config.
    """

    def __init__(
        self,
        policy: torch.nn.Module,
        reference: torch.nn.Module,
        config: GRPOConfig | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        _hold_reference(policy, reference)
        self.policy = policy
        self.reference = reference

    def players(self) -> Mapping[str, torch.nn.Module]:
        """The one player, ``{"policy": policy}``; the reference is held, never updated."""
        return {"policy": self.policy}

    def loss(self, player: str, batch: GRPOBatch | Mapping[str, Tensor]) -> Tensor:
        """The mean GRPO loss over the batch's completions (see :meth:`measured_loss`)."""
        return self.measured_loss(player, batch).loss

    def measured_loss(self, player: str, batch: GRPOBatch | Mapping[str, Tensor]) -> MeasuredLoss:
        """The loss and the step's metrics from one forward pass of each model.

        Raises:
            InvalidInputError: another player, a batch that is not a
                :class:`GRPOBatch`, or logits of the wrong shape.
            ConfigError: the reference was unfrozen.
        """
        if player != "policy":
            raise InvalidInputError(f"GRPO has one player, 'policy'; got {player!r}")
        batch = GRPOBatch.of(batch)
        _check_frozen(self.reference)
        ids = batch.ids.long()
        log_probs = _token_log_probs(self.policy, ids)
        with torch.no_grad():
            ref_log_probs = _token_log_probs(self.reference, ids)
        mask = batch.mask[:, 1:]
        terms = grpo_losses(
            log_probs,
            batch.old_log_probs[:, 1:].to(log_probs.dtype),
            ref_log_probs,
            mask,
            batch.advantages,
            clip_eps=self.config.clip_eps,
            beta=self.config.beta,
        )
        with torch.no_grad():
            scored, tokens = mask.to(log_probs.dtype), mask.sum()
            metrics = {
                "reward_mean": float(batch.rewards.mean()),
                "kl": float((terms.kl.sum(dim=1) / scored.sum(dim=1)).mean()),
                "clip_fraction": float(terms.clipped.sum() / tokens),
                "ratio_mean": float((terms.ratio * scored).sum() / tokens),
            }
        return MeasuredLoss(terms.losses.mean(), metrics)

    def count_items(self, batch: object) -> int:
        """Completions in a batch."""
        try:
            return int(GRPOBatch.of(batch).ids.shape[0])
        except InvalidInputError:
            return 0
