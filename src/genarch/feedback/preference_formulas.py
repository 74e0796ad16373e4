"""Preference data and the papers' formulas: the batch, sequence log-probabilities, the losses.

The inputs of :class:`~genarch.feedback.PreferenceOptimization` (in
:mod:`genarch.feedback.preference`), kept apart from the objective so that a
reader can check them against the papers on their own:

* :func:`preference_batch` tokenises :class:`~genarch.schemas.Preference`
  records into a :class:`PreferenceBatch` (prompt + response ids, and masks
  that are True only at the response's tokens);
* :func:`sequence_log_probs` is a response's *sequence log-probability*: the
  sum of ``log p(token | tokens before it)`` over the response tokens only;
* :func:`preference_losses` is the per-pair loss from the four sequence
  log-probabilities of the chosen response ``w`` and the rejected response
  ``l`` under the policy ``π`` and the reference ``π_ref``. With
  ``h = [log π(w) - log π_ref(w)] - [log π(l) - log π_ref(l)]``:

  * **DPO** (Rafailov et al. 2023, eq. 7): ``-log sigmoid(β h)``;
  * **conservative DPO** (Mitchell 2023, "A note on DPO with noisy preferences"):
    the labels are flipped with probability ``ε``:
    ``-(1 - ε) log sigmoid(β h) - ε log sigmoid(-β h)``;
  * **IPO** (Azar et al. 2023, eq. 17, with ``τ = β``): ``(h - 1/(2β))²``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Literal, Self

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from genarch.errors import InvalidInputError
from genarch.protocols import Tokenizer
from genarch.schemas import Preference
from genarch.validation import describe

__all__ = [
    "PreferenceBatch",
    "PreferenceLoss",
    "preference_batch",
    "preference_losses",
    "sequence_log_probs",
]

PreferenceLoss = Literal["dpo", "cdpo", "ipo"]


# --------------------------------------------------------------------------- the batch


class _TensorFields(Mapping[str, Tensor]):
    """A frozen dataclass of tensors that reads as a mapping of its fields.

    The trainer indexes such a batch as columns, cuts it into micro-batches and
    moves it between devices; those hand the objective a plain ``dict`` with
    the same keys, which :meth:`of` turns back into a checked batch.
    """

    @classmethod
    def of(cls, batch: object) -> Self:
        """``batch`` as a checked batch of this class (it may be the plain dict
        of its fields that the trainer's slicing makes).

        Raises:
            InvalidInputError: not a batch, or a mapping with other keys.
        """
        if isinstance(batch, cls):
            return batch
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        if not isinstance(batch, Mapping) or set(batch) != set(names):
            keys = sorted(map(str, batch)) if isinstance(batch, Mapping) else None
            raise InvalidInputError(
                f"expected a {cls.__name__} (or a mapping with keys {names}), got "
                f"{describe(batch) if keys is None else f'a mapping with keys {keys}'}"
            )
        return cls(**{name: batch[name] for name in names})

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class PreferenceBatch(_TensorFields):
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

    @property
    def num_pairs(self) -> int:
        """Pairs in the batch (its rows)."""
        return int(self.chosen.shape[0])


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
    token_log_probs = _token_log_probs(model, ids)
    scored = mask[:, 1:].to(token_log_probs.dtype)
    return _SequenceScores(
        log_probs=(token_log_probs * scored).sum(dim=1), tokens=scored.sum(dim=1)
    )


def _token_log_probs(model: torch.nn.Module, ids: Tensor) -> Tensor:
    """``(B, T - 1)``: ``log p(ids[:, t] | ids[:, <t])`` for ``t >= 1``, at least float32."""
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
    return wide.log_softmax(dim=-1).gather(2, targets[..., None].long())[..., 0]


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
