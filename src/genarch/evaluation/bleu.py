"""BLEU (Papineni et al., 2002, "BLEU: a Method for Automatic Evaluation of Machine Translation").

Computed exactly as ``sacrebleu`` 2.x computes it (Post, 2018, "A Call for
Clarity in Reporting BLEU Scores"), so the numbers can be compared with
published ones. With the default config:

* :meth:`BLEU.evaluate` equals ``sacrebleu.sentence_bleu(hypothesis,
  references).score / 100`` — ``13a`` tokenisation, case kept, n-grams up to
  4, ``exp`` smoothing (each order with no match gets precision
  ``1 / (2^k * total)`` for the k-th such order, NIST's method), effective
  order on (orders the hypothesis is too short for are left out);
* :meth:`BLEU.corpus_score` equals ``sacrebleu.corpus_bleu(hypotheses,
  [references]).score / 100`` — statistics summed over the corpus, ``exp``
  smoothing, effective order off (sacrebleu's corpus default).

Scores are on ``[0, 1]`` (sacrebleu prints them times 100). The test suite
checks both against sacrebleu on a corpus of perturbed sentences from
Python's documentation to 1e-9.

Limits: BLEU counts surface n-gram overlap with the references: a correct
paraphrase scores low, and sentence-level BLEU is noisy (it was designed for
corpora).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.evaluation._text import ngram_counts, output_text, reference_texts, tokenize_13a
from genarch.schemas import Config, Evaluation
from genarch.validation import describe

__all__ = ["BLEU", "BLEUConfig", "BLEUStatistics", "bleu_from_statistics"]

_LOG_ZERO = -9999999999.0  # sacrebleu's floor for log(0)


class BLEUConfig(Config):
    """Settings of :class:`BLEU`; the defaults are sacrebleu's.

    Attributes:
        max_order: the longest n-gram counted.
        lowercase: lowercase hypothesis and references first.
        smooth_method: ``"exp"`` (sacrebleu's default) or ``"none"``.
        effective_order: leave out n-gram orders the hypothesis has none of,
            in :meth:`BLEU.evaluate` (sacrebleu's sentence default); the
            corpus score never does (sacrebleu's corpus default).
    """

    max_order: Annotated[int, Field(ge=1, le=10)] = 4
    lowercase: bool = False
    smooth_method: Literal["exp", "none"] = "exp"
    effective_order: bool = True


class BLEUStatistics(Config):
    """BLEU's sufficient statistics for one or more segments (they add up over a corpus).

    Attributes:
        hypothesis_length, reference_length: tokens in the hypothesis and in
            the closest reference (the shorter one on a tie).
        matches, totals: clipped matching n-grams and hypothesis n-grams, per order.
    """

    hypothesis_length: Annotated[int, Field(ge=0)]
    reference_length: Annotated[int, Field(ge=0)]
    matches: tuple[int, ...]
    totals: tuple[int, ...]

    def __add__(self, other: BLEUStatistics) -> BLEUStatistics:
        return BLEUStatistics(
            hypothesis_length=self.hypothesis_length + other.hypothesis_length,
            reference_length=self.reference_length + other.reference_length,
            matches=tuple(a + b for a, b in zip(self.matches, other.matches, strict=True)),
            totals=tuple(a + b for a, b in zip(self.totals, other.totals, strict=True)),
        )


def _all_ngrams(tokens: Sequence[str], max_order: int) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for n in range(1, max_order + 1):
        counts.update(ngram_counts(tokens, n))
    return counts


def segment_statistics(
    hypothesis: Sequence[str], references: Sequence[Sequence[str]], max_order: int
) -> BLEUStatistics:
    """The statistics of one tokenised hypothesis against its tokenised references.

    A hypothesis n-gram's count is clipped at the most times any one
    reference holds it; the reference length is the one closest to the
    hypothesis length (the shorter on a tie).
    """
    reference_counts: Counter[tuple[str, ...]] = Counter()
    for reference in references:
        for ngram, count in _all_ngrams(reference, max_order).items():
            reference_counts[ngram] = max(reference_counts[ngram], count)
    length = len(hypothesis)
    closest = min((abs(length - len(r)), len(r)) for r in references)[1]
    matches, totals = [0] * max_order, [0] * max_order
    for ngram, count in _all_ngrams(hypothesis, max_order).items():
        totals[len(ngram) - 1] += count
        matches[len(ngram) - 1] += min(count, reference_counts.get(ngram, 0))
    return BLEUStatistics(
        hypothesis_length=length,
        reference_length=closest,
        matches=tuple(matches),
        totals=tuple(totals),
    )


def bleu_from_statistics(
    statistics: BLEUStatistics, *, smooth_method: str = "exp", effective_order: bool = False
) -> float:
    """BLEU on ``[0, 1]`` from its statistics, with sacrebleu's smoothing and effective order.

    Examples:
        >>> stats = BLEUStatistics(hypothesis_length=4, reference_length=4,
        ...                        matches=(4, 3, 2, 1), totals=(4, 3, 2, 1))
        >>> round(bleu_from_statistics(stats), 12)  # sacrebleu's rounding: 1.0000000000000004
        1.0
    """
    hyp_len, ref_len = statistics.hypothesis_length, statistics.reference_length
    brevity = 1.0
    if hyp_len < ref_len:
        brevity = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    if not any(statistics.matches):
        return 0.0
    # precisions on sacrebleu's 0..100 scale, so every rounding step is the same as its
    precisions = [0.0] * len(statistics.matches)
    smooth, order = 1.0, len(precisions)
    for n, (match, total) in enumerate(zip(statistics.matches, statistics.totals, strict=True)):
        if total == 0:
            break
        if effective_order:
            order = n + 1
        if match == 0:
            if smooth_method == "exp":
                smooth *= 2
                precisions[n] = 100.0 / (smooth * total)
        else:
            precisions[n] = 100.0 * match / total
    logs = [math.log(p) if p != 0.0 else _LOG_ZERO for p in precisions[:order]]
    return brevity * math.exp(sum(logs) / order) / 100.0


class BLEU(Configured[BLEUConfig]):
    """Sentence BLEU of an output against its reference(s), and corpus BLEU.

    ``evaluate(references, hypothesis)``: ``references`` is one reference
    string or a sequence of them; ``hypothesis`` a ``str`` or a
    :class:`~genarch.schemas.TextResult`. Scores: ``bleu`` on ``[0, 1]``.

    Examples:
        >>> bleu = BLEU()
        >>> round(bleu.evaluate("the cat sat on the mat", "the cat sat on the mat").scores["bleu"], 12)
        1.0
        >>> round(bleu.evaluate("the cat sat on the mat", "the cat sat on a mat").scores["bleu"], 4)
        0.5373
    """

    def _tokens(self, text: str) -> list[str]:
        return tokenize_13a(text.lower() if self.config.lowercase else text)

    def statistics(self, references: Any, hypothesis: Any) -> BLEUStatistics:
        """The sufficient statistics of one hypothesis against its reference(s).

        Raises:
            InvalidInputError: ``references`` is not a str or a non-empty
                sequence of str, or ``hypothesis`` is not a str or TextResult.
        """
        refs = reference_texts(references, "BLEU.evaluate", "references")
        text = output_text(hypothesis, "BLEU.evaluate", "hypothesis")
        return segment_statistics(
            self._tokens(text), [self._tokens(r) for r in refs], self.config.max_order
        )

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        """Sentence BLEU of ``result`` (the hypothesis) against ``request`` (its reference(s)).

        Raises:
            InvalidInputError: see :meth:`statistics`.
        """
        stats = self.statistics(request, result)
        score = bleu_from_statistics(
            stats,
            smooth_method=self.config.smooth_method,
            effective_order=self.config.effective_order,
        )
        return Evaluation(
            scores={"bleu": score},
            details={
                "matches": " ".join(map(str, stats.matches)),
                "totals": " ".join(map(str, stats.totals)),
                "lengths": f"{stats.hypothesis_length}/{stats.reference_length}",
            },
        )

    def corpus_score(self, references: Sequence[Any], hypotheses: Sequence[Any]) -> float:
        """Corpus BLEU: statistics summed over the segments, then one score.

        Args:
            references: per segment, its reference string or a sequence of them.
            hypotheses: per segment, the output (str or TextResult).

        Raises:
            InvalidInputError: the two are not sequences of the same non-zero
                length, or a segment is malformed (the message gives its index).
        """
        for name, value in (("references", references), ("hypotheses", hypotheses)):
            if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
                raise InvalidInputError(
                    f"BLEU.corpus_score expected {name} as a non-empty sequence, got {describe(value)}"
                )
        if len(references) != len(hypotheses):
            raise InvalidInputError(
                f"BLEU.corpus_score expected as many references as hypotheses, "
                f"got {len(references)} and {len(hypotheses)}"
            )
        total: BLEUStatistics | None = None
        for index, (refs, hypothesis) in enumerate(zip(references, hypotheses, strict=True)):
            try:
                stats = self.statistics(refs, hypothesis)
            except InvalidInputError as error:
                raise InvalidInputError(f"segment {index}: {error}") from None
            total = stats if total is None else total + stats
        assert total is not None  # non-empty, checked above
        return bleu_from_statistics(
            total, smooth_method=self.config.smooth_method, effective_order=False
        )
