"""Measuring a round of the feedback loop: win rate against the base, KL to it, perplexity.

After preference optimisation, three numbers say whether the new model is
better and what it cost:

* :func:`win_rate` — how often the new model's answer beats the base model's
  answer to the same held-out prompt, under a preference function (a
  simulated user, a reward model, a programmatic check). Each comparison
  scores 1 (win), 1/2 (tie) or 0 (loss); the rate is their mean, so a model
  compared with itself scores about 1/2.
* :func:`sampled_kl` — ``KL(π ‖ π_base)`` on held-out prompts, estimated from
  answers sampled from the new model ``π`` itself: the mean of
  ``log π(y | x) - log π_base(y | x)`` over the samples. That is the plain
  Monte-Carlo estimator of the KL divergence of the answer distributions, in
  nats per answer (and per answer token); it is unbiased when the samples
  come from ``π`` unmodified (temperature 1, no top-k/top-p), which is how
  it draws them.
* :func:`perplexity_change` — held-out perplexity of the base and the new
  model on the same tokens (through :func:`~genarch.models.evaluate_loss`) and
  the relative change: what the new model forgot of the language.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import torch
from pydantic import Field

from genarch.errors import InvalidInputError
from genarch.feedback.preference_formulas import sequence_log_probs
from genarch.feedback.reward import candidate_seed
from genarch.models import GPT, TextGenerator, evaluate_loss
from genarch.protocols import Generator
from genarch.schemas import Record, TextRequest, TextResult
from genarch.validation import describe

__all__ = [
    "KLEstimate",
    "PerplexityChange",
    "WinRate",
    "perplexity_change",
    "preference_from_score",
    "sampled_kl",
    "win_rate",
]

PreferenceFunction = Callable[[str, str, str], float]
"""``prefer(prompt, answer_a, answer_b)``: how much ``answer_a`` is preferred, in ``[0, 1]``
(1: a is better, 0: b is better, 1/2: a tie)."""


class WinRate(Record):
    """How a candidate model's answers fared against a baseline's on the same prompts.

    Attributes:
        rate: mean score of the comparisons, ``(wins + ties / 2) / comparisons``
            (with fractional preferences, the mean preference for the candidate).
        wins: comparisons the candidate won (score above 1/2).
        ties: comparisons scored exactly 1/2.
        losses: comparisons the candidate lost (score below 1/2).
        comparisons: how many answer pairs were compared.
        stderr: the standard error of ``rate``, treating comparisons as independent.
    """

    rate: Annotated[float, Field(ge=0.0, le=1.0)]
    wins: Annotated[int, Field(ge=0)]
    ties: Annotated[int, Field(ge=0)]
    losses: Annotated[int, Field(ge=0)]
    comparisons: Annotated[int, Field(ge=1)]
    stderr: Annotated[float, Field(ge=0.0)]


class KLEstimate(Record):
    """A Monte-Carlo estimate of ``KL(π ‖ π_ref)`` from answers sampled from ``π``.

    Attributes:
        per_answer: mean of ``log π(y | x) - log π_ref(y | x)`` over the samples, in nats.
        per_token: the summed log-ratios divided by the answers' tokens.
        samples: answers drawn.
        tokens: answer tokens in all.
    """

    per_answer: float
    per_token: float
    samples: Annotated[int, Field(ge=1)]
    tokens: Annotated[int, Field(ge=1)]


class PerplexityChange(Record):
    """Held-out perplexity of a base model and of its successor, on the same tokens.

    Attributes:
        base: the base model's perplexity.
        new: the new model's perplexity.
        relative: ``new / base - 1`` (0.05: five per cent worse).
        tokens: predicted tokens.
    """

    base: float
    new: float
    relative: float
    tokens: Annotated[int, Field(ge=1)]


def preference_from_score(score: Callable[[str], float]) -> PreferenceFunction:
    """A preference function that prefers the answer with the higher ``score`` (equal: a tie).

    Example:
        >>> prefer = preference_from_score(lambda text: -text.lower().count("um"))
        >>> prefer("Q?", "Yes.", "Um, yes."), prefer("Q?", "Um, um.", "Um."), prefer("Q?", "a", "b")
        (1.0, 0.0, 0.5)
    """
    if not callable(score):
        raise InvalidInputError(f"score must be callable (text -> float), got {describe(score)}")

    def prefer(prompt: str, answer_a: str, answer_b: str) -> float:
        a, b = score(answer_a), score(answer_b)
        return 1.0 if a > b else 0.0 if a < b else 0.5

    return prefer


def _prompts(prompts: Sequence[str], samples_per_prompt: int) -> list[str]:
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise InvalidInputError(f"prompts must be a sequence of strings, got {describe(prompts)}")
    if not prompts:
        raise InvalidInputError("prompts is empty: there is nothing to compare")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt:
            raise InvalidInputError(f"prompts[{index}] must be a non-empty string, got {prompt!r}")
    if not (
        isinstance(samples_per_prompt, int)
        and not isinstance(samples_per_prompt, bool)
        and samples_per_prompt >= 1
    ):
        raise InvalidInputError(
            f"samples_per_prompt must be an int >= 1, got {samples_per_prompt!r}"
        )
    return [prompt for prompt in prompts for _ in range(samples_per_prompt)]


def _requests(prompts: list[str], max_new_tokens: int, seed: int, side: int) -> list[TextRequest]:
    """Plain sampling (temperature 1, no truncation), one hashed seed per (sample, side)."""
    if not (isinstance(max_new_tokens, int) and max_new_tokens >= 1):
        raise InvalidInputError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    return [
        TextRequest(
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            seed=candidate_seed(seed, 2 * index + side),
        )
        for index, prompt in enumerate(prompts)
    ]


def win_rate(
    candidate: Generator[TextRequest, TextResult],
    baseline: Generator[TextRequest, TextResult],
    prompts: Sequence[str],
    prefer: PreferenceFunction,
    *,
    samples_per_prompt: int = 1,
    max_new_tokens: int = 64,
    seed: int = 0,
) -> WinRate:
    """The candidate's win rate against the baseline on ``prompts``, under ``prefer``.

    Each prompt is answered ``samples_per_prompt`` times by each model, by
    plain sampling; the candidate's and the baseline's answers get different
    seeds (hashes of ``seed``), so a model compared with itself is a fair coin
    (about 1/2), not a row of ties.

    Args:
        candidate: the model being judged (any text :class:`~genarch.protocols.Generator`).
        baseline: the model it is compared with.
        prompts: held-out prompts (not those the candidate was trained on).
        prefer: ``prefer(prompt, candidate_answer, baseline_answer)`` in ``[0, 1]``.
        samples_per_prompt: answer pairs per prompt.
        max_new_tokens: the length of each answer, in tokens.
        seed: makes the whole measurement repeatable.

    Raises:
        InvalidInputError: empty or non-text prompts, a bad count, or a
            preference outside ``[0, 1]``.

    Example:
        >>> class Echo:  # stands in for a model: its answer is the seed's parity
        ...     def generate(self, r): return TextResult(text="odd" if r.seed % 2 else "even")
        ...     def generate_batch(self, rs): return [self.generate(r) for r in rs]
        >>> result = win_rate(Echo(), Echo(), ["Q"], lambda p, a, b: float(a == "odd"),
        ...                   samples_per_prompt=8)
        >>> result.comparisons, 0.0 <= result.rate <= 1.0
        (8, True)
    """
    asked = _prompts(prompts, samples_per_prompt)
    ours = candidate.generate_batch(_requests(asked, max_new_tokens, seed, 0))
    theirs = baseline.generate_batch(_requests(asked, max_new_tokens, seed, 1))
    scores = []
    for index, (prompt, a, b) in enumerate(zip(asked, ours, theirs, strict=True)):
        value = prefer(prompt, a.text, b.text)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise InvalidInputError(
                f"prefer must return a number in [0, 1]; comparison {index} gave {describe(value)}"
            )
        scores.append(float(value))
    count = len(scores)
    rate = sum(scores) / count
    variance = sum((s - rate) ** 2 for s in scores) / max(count - 1, 1)
    return WinRate(
        rate=rate,
        wins=sum(s > 0.5 for s in scores),
        ties=sum(s == 0.5 for s in scores),
        losses=sum(s < 0.5 for s in scores),
        comparisons=count,
        stderr=math.sqrt(variance / count),
    )


def sampled_kl(
    policy: TextGenerator,
    reference: torch.nn.Module,
    prompts: Sequence[str],
    *,
    samples_per_prompt: int = 1,
    max_new_tokens: int = 64,
    seed: int = 0,
) -> KLEstimate:
    """Estimate ``KL(π ‖ π_ref)`` of the answer distributions on ``prompts`` (see the module docs).

    Args:
        policy: the new model ``π`` with its tokenizer; the answers are sampled from it.
        reference: the base model ``π_ref`` (ids ``(B, T)`` → logits ``(B, T, V)``),
            reading the same tokens.
        prompts, samples_per_prompt, max_new_tokens, seed: as in :func:`win_rate`.

    Raises:
        InvalidInputError: bad prompts or counts, or a policy that is not a
            :class:`~genarch.models.TextGenerator`.

    Example:
        >>> from genarch.data import ByteTokenizer
        >>> _ = torch.manual_seed(0)
        >>> model = GPT(vocab_size=256, context_length=32, n_layer=1, n_head=2, n_embd=16)
        >>> estimate = sampled_kl(TextGenerator(model, ByteTokenizer()), model, ["Hi"],
        ...                       samples_per_prompt=4, max_new_tokens=8)
        >>> estimate.per_answer, estimate.tokens  # a model against itself
        (0.0, 32)
    """
    if not isinstance(policy, TextGenerator):
        raise InvalidInputError(f"policy must be a TextGenerator, got {describe(policy)}")
    if not isinstance(reference, torch.nn.Module):
        raise InvalidInputError(f"reference must be a torch.nn.Module, got {describe(reference)}")
    asked = _prompts(prompts, samples_per_prompt)
    answers = policy.generate_batch(_requests(asked, max_new_tokens, seed, 0))
    rows = [
        (policy.tokenizer.encode(prompt), list(answer.token_ids))
        for prompt, answer in zip(asked, answers, strict=True)
    ]
    rows = [(prompt_ids, answer_ids) for prompt_ids, answer_ids in rows if answer_ids]
    if not rows:
        raise InvalidInputError("the policy answered every prompt with no token")
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for row, (prompt_ids, answer_ids) in enumerate(rows):
        ids[row, : len(prompt_ids) + len(answer_ids)] = torch.tensor(prompt_ids + answer_ids)
        mask[row, len(prompt_ids) : len(prompt_ids) + len(answer_ids)] = True
    device = policy.model.wte.weight.device
    ratios = _log_probs(policy.model, ids, mask, device) - _log_probs(reference, ids, mask, device)
    tokens = int(mask.sum())
    return KLEstimate(
        per_answer=float(ratios.mean()),
        per_token=float(ratios.sum()) / tokens,
        samples=len(rows),
        tokens=tokens,
    )


def _log_probs(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, device: torch.device
) -> torch.Tensor:
    mode = model.training
    try:
        model.eval()
        with torch.no_grad():
            return sequence_log_probs(model, ids.to(device), mask.to(device)).double().cpu()
    finally:
        model.train(mode)


def perplexity_change(
    base: GPT, new: GPT, tokens: Any, *, block_size: int | None = None, batch_size: int = 8
) -> PerplexityChange:
    """Held-out perplexity of ``base`` and ``new`` on ``tokens``, and the relative change.

    Args:
        base, new: the models to compare.
        tokens: held-out token ids, as :func:`~genarch.models.evaluate_loss` takes them.
        block_size, batch_size: as in :func:`~genarch.models.evaluate_loss`.

    Raises:
        InvalidInputError: malformed tokens (from :func:`~genarch.models.evaluate_loss`).
    """
    before = evaluate_loss(base, tokens, block_size=block_size, batch_size=batch_size)
    after = evaluate_loss(new, tokens, block_size=block_size, batch_size=batch_size)
    return PerplexityChange(
        base=before.perplexity,
        new=after.perplexity,
        relative=after.perplexity / before.perplexity - 1.0,
        tokens=after.num_tokens,
    )
