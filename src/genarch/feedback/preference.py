"""Preference optimisation: DPO, IPO and conservative DPO against a frozen reference model.

A :class:`PreferenceOptimization` is a :class:`~genarch.protocols.TrainingObjective`
with one player, the ``policy``; the ``reference`` beside it is frozen (eval
mode, no gradients, never a player) and checked to stay so. Both are any
causal language model mapping token ids ``(B, T)`` to logits ``(B, T, V)`` —
genarch's :class:`~genarch.models.GPT` or a module of your own.

Every loss is a function of four *sequence log-probabilities* — the sum of
``log p(token | tokens before it)`` over the response tokens only
(:func:`sequence_log_probs`) — of the chosen response ``w`` and the rejected
response ``l`` under the policy ``π`` and the reference ``π_ref``. With
``h = [log π(w) - log π_ref(w)] - [log π(l) - log π_ref(l)]``
(:func:`preference_losses`):

* **DPO** (Rafailov et al. 2023, eq. 7): ``-log sigmoid(β h)``;
* **conservative DPO** (Mitchell 2023, "A note on DPO with noisy preferences"):
  the labels are flipped with probability ``ε``:
  ``-(1 - ε) log sigmoid(β h) - ε log sigmoid(-β h)``;
* **IPO** (Azar et al. 2023, eq. 17, with ``τ = β``): ``(h - 1/(2β))²``.

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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, Self

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field, model_validator
from torch import Tensor

from genarch.configured import Configured
from genarch.errors import ConfigError, InvalidInputError
from genarch.protocols import Tokenizer
from genarch.schemas import Config, Preference
from genarch.training.objectives import MeasuredLoss
from genarch.validation import describe

__all__ = [
    "PreferenceBatch",
    "PreferenceOptimization",
    "PreferenceOptimizationConfig",
    "freeze_reference",
    "preference_batch",
    "preference_losses",
    "sequence_log_probs",
]

PreferenceLoss = Literal["dpo", "cdpo", "ipo"]


# --------------------------------------------------------------------------- the batch


@dataclass(frozen=True, eq=False)
class PreferenceBatch(Mapping[str, Tensor]):
    """Token ids of prompt + chosen and prompt + rejected responses, with response masks.

    Rows are right-padded to one length ``T``; a mask is True exactly at the
    tokens of the response (the prompt and the padding do not count). The
    first token of a row is never a response token: it is the context the
    first prediction reads. Row ``i`` of ``chosen`` and ``rejected`` is one pair.

    The batch is also a read-only mapping of its four fields, so the
    trainer can index it as columns, cut it into micro-batches and move it
    between devices; those hand the objective a plain ``dict`` with the same
    keys, which :meth:`of` turns back into a checked batch.

    Attributes:
        chosen: ``(B, T)`` integer token ids of prompt + chosen response.
        chosen_mask: ``(B, T)`` booleans, True at the chosen response's tokens.
        rejected: ``(B, T)`` integer token ids of prompt + rejected response.
        rejected_mask: ``(B, T)`` booleans, True at the rejected response's tokens.

    Raises:
        InvalidInputError: a field is not a tensor of the stated kind, the
            shapes differ, a row has no response token, or the first token
            is marked as a response token. The message names the field.
    """

    chosen: Tensor
    chosen_mask: Tensor
    rejected: Tensor
    rejected_mask: Tensor

    def __post_init__(self) -> None:
        shape = None
        for name in ("chosen", "rejected"):
            ids, mask = getattr(self, name), getattr(self, f"{name}_mask")
            if not isinstance(ids, Tensor) or ids.ndim != 2 or _not_integer(ids):
                raise InvalidInputError(
                    f"PreferenceBatch.{name} must be a 2-D integer tensor (B, T), got {_shown(ids)}"
                )
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != ids.shape:
                raise InvalidInputError(
                    f"PreferenceBatch.{name}_mask must be a bool tensor of shape "
                    f"{tuple(ids.shape)}, got {_shown(mask)}"
                )
            if shape is not None and ids.shape[0] != shape[0]:
                raise InvalidInputError(
                    f"PreferenceBatch.{name} has {ids.shape[0]} rows but chosen has {shape[0]}"
                )
            shape = ids.shape
            if ids.shape[0] == 0 or ids.shape[1] < 2:
                raise InvalidInputError(
                    f"PreferenceBatch.{name} needs at least one row of two tokens, "
                    f"got shape {tuple(ids.shape)}"
                )
            if bool(mask[:, 0].any()):
                raise InvalidInputError(
                    f"PreferenceBatch.{name}_mask marks the first token, which nothing predicts"
                )
            empty = (~mask.any(dim=1)).nonzero()
            if empty.numel():
                raise InvalidInputError(
                    f"PreferenceBatch.{name}_mask: row {int(empty[0])} has no response token"
                )

    @classmethod
    def of(cls, batch: object) -> PreferenceBatch:
        """``batch`` as a checked :class:`PreferenceBatch` (it may be the plain dict
        of its fields that the trainer's slicing makes).

        Raises:
            InvalidInputError: not a batch, or a mapping with other keys.
        """
        if isinstance(batch, PreferenceBatch):
            return batch
        names = [f.name for f in fields(cls)]
        if not isinstance(batch, Mapping) or set(batch) != set(names):
            keys = sorted(map(str, batch)) if isinstance(batch, Mapping) else None
            raise InvalidInputError(
                f"expected a PreferenceBatch (or a mapping with keys {names}), got "
                f"{describe(batch) if keys is None else f'a mapping with keys {keys}'}"
            )
        return cls(**{name: batch[name] for name in names})

    def __getitem__(self, key: str) -> Tensor:
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    @property
    def num_pairs(self) -> int:
        """Pairs in the batch (its rows)."""
        return int(self.chosen.shape[0])


_FIELDS = ("chosen", "chosen_mask", "rejected", "rejected_mask")


def _not_integer(ids: Tensor) -> bool:
    return ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool


def _shown(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return describe(value)


def preference_batch(
    preferences: Iterable[Preference], tokenizer: Tokenizer, max_len: int, *, pad_id: int = 0
) -> PreferenceBatch:
    """Tokenise preference pairs into a :class:`PreferenceBatch`.

    The prompt and each response are encoded separately and joined, so the
    response tokens are exactly the response's own encoding. A pair longer
    than ``max_len`` tokens keeps its response whole when it fits in
    ``max_len - 1`` tokens and drops the start of the prompt; a longer
    response is cut at its end and keeps the prompt's last token as context.

    Args:
        preferences: :class:`~genarch.schemas.Preference` records with text
            responses (e.g. from :func:`~genarch.feedback.preference_pairs`).
        tokenizer: any :class:`~genarch.protocols.Tokenizer`.
        max_len: the most tokens of a row (the model's context length or less), at least 2.
        pad_id: the id written into padding (masked out, never scored).

    Raises:
        InvalidInputError: no preferences, an item that is not a Preference, a
            response that is not text (an ``OutputRef``), a prompt or response
            that encodes to no token, or ``max_len`` below 2.

    Example:
        >>> from genarch.data import ByteTokenizer
        >>> batch = preference_batch(
        ...     [Preference(prompt="Q", chosen="ok.", rejected="no")], ByteTokenizer(), max_len=8
        ... )
        >>> batch.chosen.tolist(), batch.chosen_mask.tolist()
        ([[81, 111, 107, 46]], [[False, True, True, True]])
        >>> batch.rejected.tolist(), batch.rejected_mask.tolist()
        ([[81, 110, 111, 0]], [[False, True, True, False]])
    """
    if not (isinstance(max_len, int) and not isinstance(max_len, bool) and max_len >= 2):
        raise InvalidInputError(f"max_len must be an int >= 2, got {max_len!r}")
    if not (isinstance(pad_id, int) and 0 <= pad_id < tokenizer.vocab_size):
        raise InvalidInputError(
            f"pad_id must be a token id in range({tokenizer.vocab_size}), got {pad_id!r}"
        )
    rows: dict[str, list[list[int]]] = {"chosen": [], "rejected": []}
    starts: dict[str, list[int]] = {"chosen": [], "rejected": []}
    count = 0
    for index, preference in enumerate(preferences):
        count += 1
        if not isinstance(preference, Preference):
            raise InvalidInputError(
                f"preferences[{index}] must be a Preference, got {describe(preference)}"
            )
        prompt = tokenizer.encode(preference.prompt)
        if not prompt:
            raise InvalidInputError(f"preferences[{index}].prompt encodes to no token")
        for name in ("chosen", "rejected"):
            text = getattr(preference, name)
            if not isinstance(text, str):
                raise InvalidInputError(
                    f"preferences[{index}].{name} must be text to train on, got {describe(text)}"
                )
            response = tokenizer.encode(text)
            if not response:
                raise InvalidInputError(f"preferences[{index}].{name} encodes to no token")
            response = response[: max_len - 1]
            context = prompt[-(max_len - len(response)) :]
            rows[name].append(context + response)
            starts[name].append(len(context))
    if count == 0:
        raise InvalidInputError("preferences is empty: a batch needs at least one pair")
    width = max(len(row) for name in rows for row in rows[name])
    tensors: dict[str, Tensor] = {}
    for name in ("chosen", "rejected"):
        ids = torch.full((count, width), pad_id, dtype=torch.long)
        mask = torch.zeros((count, width), dtype=torch.bool)
        for i, (row, start) in enumerate(zip(rows[name], starts[name], strict=True)):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, start : len(row)] = True
        tensors[name], tensors[f"{name}_mask"] = ids, mask
    return PreferenceBatch(**tensors)


# ------------------------------------------------------------------------ the formulas


@dataclass(frozen=True)
class _SequenceScores:
    """Summed response log-probabilities and their token counts."""

    log_probs: Tensor  # (B,) float32 or wider
    tokens: Tensor  # (B,) response tokens per row


def sequence_log_probs(model: torch.nn.Module, ids: Tensor, mask: Tensor) -> Tensor:
    """``Σ_t mask[t] · log p(ids[t] | ids[<t])`` per row: the response's log-probability.

    Args:
        model: a causal LM mapping ``(B, T - 1)`` ids to ``(B, T - 1, V)`` logits.
        ids: ``(B, T)`` token ids.
        mask: ``(B, T)`` booleans, True at the tokens to score (never the first).

    Returns:
        A ``(B,)`` tensor, float32 or the logits' dtype if wider (differentiable
        through ``model``).

    Raises:
        InvalidInputError: the model returns something other than ``(B, T - 1, V)`` logits.
    """
    return _score(model, ids, mask).log_probs


def _score(model: torch.nn.Module, ids: Tensor, mask: Tensor) -> _SequenceScores:
    inputs, targets = ids[:, :-1], ids[:, 1:]
    try:
        logits = model(inputs)
    except IndexError as error:  # an id outside the embedding table
        raise InvalidInputError(f"a token id is out of the model's range: {error}") from None
    if not isinstance(logits, Tensor) or logits.ndim != 3 or logits.shape[:2] != inputs.shape:
        raise InvalidInputError(
            f"the model must map ids of shape {tuple(inputs.shape)} to logits (B, T, V); "
            f"it returned {_shown(logits)}"
        )
    # at least float32 (bf16 autocast logits are widened; a float64 model stays float64)
    wide = logits.to(torch.promote_types(logits.dtype, torch.float32))
    token_log_probs = wide.log_softmax(dim=-1).gather(2, targets[..., None].long())
    scored = mask[:, 1:].to(token_log_probs.dtype)
    return _SequenceScores(
        log_probs=(token_log_probs[..., 0] * scored).sum(dim=1), tokens=scored.sum(dim=1)
    )


def preference_losses(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    *,
    loss: PreferenceLoss = "dpo",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> Tensor:
    """The per-pair preference loss from the four sequence log-probabilities (each ``(B,)``).

    With ``h = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)``:
    ``"dpo"`` is ``-log sigmoid(β h)``, ``"cdpo"`` is
    ``-(1 - ε) log sigmoid(β h) - ε log sigmoid(-β h)`` with ``ε = label_smoothing``, and
    ``"ipo"`` is ``(h - 1/(2β))²``. See the module docstring for the papers.

    Example:
        >>> zero = torch.zeros(1)
        >>> round(float(preference_losses(zero, zero, zero, zero)), 4)  # log 2
        0.6931
    """
    h = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    if loss == "ipo":
        return (h - 1.0 / (2.0 * beta)) ** 2
    if loss == "cdpo":
        eps = label_smoothing
        return -(1.0 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    if loss == "dpo":
        return -F.logsigmoid(beta * h)
    raise InvalidInputError(f"loss must be 'dpo', 'cdpo' or 'ipo', got {loss!r}")


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
        for name, module in (("policy", policy), ("reference", reference)):
            if not isinstance(module, torch.nn.Module):
                raise ConfigError(f"{name} must be a torch.nn.Module, got {describe(module)}")
        if policy is reference:
            raise ConfigError(
                "policy and reference are the same module; pass freeze_reference(policy)"
            )
        shared = {id(p) for p in policy.parameters()} & {id(p) for p in reference.parameters()}
        if shared:
            raise ConfigError(
                f"policy and reference share {len(shared)} parameter tensors; the reference "
                "must be a separate frozen copy (freeze_reference(policy))"
            )
        reference.eval()
        reference.requires_grad_(False)
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
        self._check_reference()
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

    def _check_reference(self) -> None:
        if self.reference.training or any(p.requires_grad for p in self.reference.parameters()):
            raise ConfigError(
                "the reference model must stay frozen (eval mode, requires_grad False); "
                "something unfroze it — it is not a player and gets no update"
            )


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
