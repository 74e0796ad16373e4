"""Diversity of a set of outputs: distinct-n and self-BLEU.

Both score a *set* — the outputs sampled for one prompt, or a model's outputs
over a data set — so ``evaluate(request, result)`` takes the set as
``result`` (a sequence of ``str`` or :class:`~genarch.schemas.TextResult`);
``request`` (the prompt the set answers) is not read.

* **distinct-n** (Li et al., 2016, "A Diversity-Promoting Objective Function
  for Neural Conversation Models"): the number of *different* n-grams in the
  set divided by the number of n-grams, pooled over all outputs. Tokens are
  :func:`~genarch.evaluation.rouge_tokens` (lowercase ASCII letters and
  digits), so punctuation and case do not count as variety. 1 means no n-gram
  repeats; a set without any n-gram of that order scores 0. Higher is more diverse.
* **self-BLEU** (Zhu et al., 2018, "Texygen"): the mean, over the outputs, of
  the sentence BLEU of each output against all the others as references
  (:class:`~genarch.evaluation.BLEU`: 13a tokens, n-grams to 4, ``exp``
  smoothing, effective order). Higher means the outputs resemble each other:
  *lower* is more diverse. Needs at least two outputs.

Limits: both are lexical. Outputs that say the same thing in other words look
diverse; distinct-n grows as sets get smaller, so compare sets of equal size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.evaluation._text import ngram_counts, output_text, rouge_tokens, tokenize_13a
from genarch.evaluation.bleu import bleu_from_statistics, segment_statistics
from genarch.schemas import Config, Evaluation
from genarch.validation import describe

__all__ = ["DistinctN", "DistinctNConfig", "SelfBLEU", "SelfBLEUConfig"]


def _output_set(result: object, where: str, minimum: int) -> list[str]:
    if isinstance(result, str | bytes) or not isinstance(result, Sequence):
        raise InvalidInputError(
            f"{where} expected result as a sequence of outputs (str or TextResult), "
            f"got {describe(result)}"
        )
    if len(result) < minimum:
        raise InvalidInputError(
            f"{where} expected result to hold at least {minimum} outputs, got {len(result)}"
        )
    return [output_text(item, where, f"result[{index}]") for index, item in enumerate(result)]


class DistinctNConfig(Config):
    """Settings of :class:`DistinctN`.

    Attributes:
        orders: the n-gram orders scored, each giving a score ``distinct_<n>``.
    """

    orders: Annotated[tuple[Annotated[int, Field(ge=1, le=10)], ...], Field(min_length=1)] = (1, 2)


class DistinctN(Configured[DistinctNConfig]):
    """Distinct-n of a set of outputs: different n-grams over all n-grams.

    Examples:
        >>> DistinctN().evaluate("prompt", ["a cat sat", "a cat ran"]).scores
        {'distinct_1': 0.6666666666666666, 'distinct_2': 0.75}
    """

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        """``distinct_<n>`` for each configured order over the outputs in ``result``.

        Raises:
            InvalidInputError: ``result`` is not a non-empty sequence of str or TextResult.
        """
        tokens = [rouge_tokens(text) for text in _output_set(result, "DistinctN.evaluate", 1)]
        scores: dict[str, float] = {}
        for n in self.config.orders:
            seen: set[tuple[str, ...]] = set()
            total = 0
            for sequence in tokens:
                counts = ngram_counts(sequence, n)
                seen.update(counts)
                total += sum(counts.values())
            scores[f"distinct_{n}"] = len(seen) / total if total else 0.0
        return Evaluation(scores=scores)


class SelfBLEUConfig(Config):
    """Settings of :class:`SelfBLEU`.

    Attributes:
        max_order: the longest n-gram BLEU counts.
    """

    max_order: Annotated[int, Field(ge=1, le=10)] = 4


class SelfBLEU(Configured[SelfBLEUConfig]):
    """Self-BLEU of a set of outputs: each against all the others; lower is more diverse.

    Quadratic in the set size (each output is scored against every other).

    Examples:
        >>> round(SelfBLEU().evaluate(None, ["the cat sat", "the cat sat", "a dog ran"]).scores["self_bleu"], 4)
        0.6667
    """

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        """The mean sentence BLEU of each output against the rest.

        Raises:
            InvalidInputError: ``result`` is not a sequence of at least two
                str or TextResult.
        """
        tokens = [tokenize_13a(text) for text in _output_set(result, "SelfBLEU.evaluate", 2)]
        total = 0.0
        for index, hypothesis in enumerate(tokens):
            others = tokens[:index] + tokens[index + 1 :]
            stats = segment_statistics(hypothesis, others, self.config.max_order)
            total += bleu_from_statistics(stats, smooth_method="exp", effective_order=True)
        return Evaluation(scores={"self_bleu": total / len(tokens)})
