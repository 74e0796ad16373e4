"""Exact match and token F1, the SQuAD answer metrics (Rajpurkar et al., 2016).

Both compare answers after :func:`~genarch.evaluation.squad_normalize`
(lowercase; remove ASCII punctuation; remove ``a``/``an``/``the``; collapse
whitespace) and take the best over the reference answers, as the official
evaluation script does:

* **exact match** — 1 when the normalised output equals a normalised reference, else 0;
* **token F1** — the normalised texts split on whitespace; the overlap is the
  size of the multiset intersection; ``precision = overlap / output tokens``,
  ``recall = overlap / reference tokens``, ``F1 = 2PR / (P + R)``. When either
  side has no token, F1 is 1 if both are empty and 0 otherwise (the SQuAD 2.0
  script's rule for unanswerable questions; the 1.1 script would give 0).

Limits: both are lexical. ``"1914"`` and ``"nineteen fourteen"`` get 0; a
long answer that contains the reference gets a low exact match but a fair F1.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from genarch.configured import Configured
from genarch.evaluation._text import output_text, reference_texts, squad_normalize
from genarch.schemas import Config, Evaluation

__all__ = ["ExactMatch", "SQuADConfig", "TokenF1", "token_f1"]


def token_f1(reference: str, output: str) -> float:
    """SQuAD token F1 of one output against one reference (both normalised here).

    Examples:
        >>> token_f1("the Eiffel Tower", "Eiffel tower in Paris")
        0.6666666666666666
    """
    gold, predicted = squad_normalize(reference).split(), squad_normalize(output).split()
    if not gold or not predicted:
        return float(gold == predicted)
    overlap = sum((Counter(gold) & Counter(predicted)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


class SQuADConfig(Config):
    """:class:`ExactMatch` and :class:`TokenF1` have no settings: they follow the SQuAD script."""


class ExactMatch(Configured[SQuADConfig]):
    """Whether the output equals a reference answer after SQuAD normalisation.

    ``evaluate(references, output)``: one reference answer or a sequence of
    them, and a ``str`` or :class:`~genarch.schemas.TextResult`.
    Scores: ``exact_match``, 1.0 or 0.0.

    Examples:
        >>> ExactMatch().evaluate(["Paris", "the city of Paris"], "paris.").scores
        {'exact_match': 1.0}
    """

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        """1.0 when ``result`` matches one of ``request``'s answers, else 0.0.

        Raises:
            InvalidInputError: ``request`` is not a str or a non-empty sequence
                of str, or ``result`` is not a str or TextResult.
        """
        references = reference_texts(request, "ExactMatch.evaluate", "request")
        output = squad_normalize(output_text(result, "ExactMatch.evaluate"))
        match = any(squad_normalize(reference) == output for reference in references)
        return Evaluation(scores={"exact_match": float(match)})


class TokenF1(Configured[SQuADConfig]):
    """The best SQuAD token F1 of the output over the reference answers.

    ``evaluate(references, output)`` as for :class:`ExactMatch`. Scores: ``f1`` on ``[0, 1]``.

    Examples:
        >>> TokenF1().evaluate("Eiffel Tower", "the tower").scores
        {'f1': 0.6666666666666666}
    """

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        """The best :func:`token_f1` of ``result`` over ``request``'s answers.

        Raises:
            InvalidInputError: as :meth:`ExactMatch.evaluate`.
        """
        references = reference_texts(request, "TokenF1.evaluate", "request")
        output = output_text(result, "TokenF1.evaluate")
        return Evaluation(scores={"f1": max(token_f1(r, output) for r in references)})
