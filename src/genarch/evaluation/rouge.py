"""ROUGE-L (Lin, 2004, "ROUGE: A Package for Automatic Evaluation of Summaries").

The longest common subsequence (LCS) of the reference and output tokens:
``precision = LCS / output tokens``, ``recall = LCS / reference tokens``,
``f = 2PR / (P + R)`` (0 when either text has no token).

Equal to Google's ``rouge-score`` package with its defaults —
``rouge_scorer.RougeScorer(["rougeL"])`` (no stemmer, its default tokeniser:
lowercase, every character outside ``[a-z0-9]`` a separator, so non-ASCII
letters are dropped). Against several references, the one with the highest
F-measure is reported (the first on a tie), as ``score_multi`` does. The test
suite checks this against ``rouge-score`` to 1e-9.

Limits: ROUGE-L rewards in-order word overlap; it cannot tell a paraphrase
from a wrong answer with the same words, and the default tokeniser ignores
every non-ASCII letter, so it is meaningless for most non-English text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genarch.configured import Configured
from genarch.evaluation._text import output_text, reference_texts, rouge_tokens
from genarch.schemas import Config, Evaluation

__all__ = ["RougeL", "RougeLConfig", "lcs_length"]


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """The length of the longest common subsequence of two token sequences.

    Dynamic programming in ``O(len(first) * len(second))`` time and
    ``O(len(second))`` memory.

    Examples:
        >>> lcs_length("abcbdab", "bdcaba")
        4
    """
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for j, other in enumerate(second, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[-1]))
        previous = current
    return previous[-1]


class RougeLConfig(Config):
    """:class:`RougeL` has no settings: it reproduces ``rouge-score``'s defaults."""


class RougeL(Configured[RougeLConfig]):
    """ROUGE-L of an output against its reference(s).

    ``evaluate(references, output)``: one reference string or a sequence of
    them, and a ``str`` or :class:`~genarch.schemas.TextResult`. Scores:
    ``rouge_l_precision``, ``rouge_l_recall``, ``rouge_l_f`` on ``[0, 1]``.

    Examples:
        >>> scores = RougeL().evaluate("the cat sat on the mat", "the cat lay on a mat").scores
        >>> scores["rouge_l_precision"], scores["rouge_l_recall"]
        (0.6666666666666666, 0.6666666666666666)
    """

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        """ROUGE-L of ``result`` against ``request`` (its reference or references).

        Raises:
            InvalidInputError: ``request`` is not a str or a non-empty sequence
                of str, or ``result`` is not a str or TextResult.
        """
        references = reference_texts(request, "RougeL.evaluate", "request")
        output = rouge_tokens(output_text(result, "RougeL.evaluate"))
        best: tuple[float, float, float] | None = None
        for reference in references:
            target = rouge_tokens(reference)
            if not target or not output:
                precision = recall = f = 0.0
            else:
                common = lcs_length(target, output)
                precision, recall = common / len(output), common / len(target)
                f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            if best is None or f > best[2]:
                best = (precision, recall, f)
        assert best is not None  # reference_texts returns at least one
        return Evaluation(
            scores={"rouge_l_precision": best[0], "rouge_l_recall": best[1], "rouge_l_f": best[2]}
        )
