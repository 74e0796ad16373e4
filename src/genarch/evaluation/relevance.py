"""Answer relevance: how close an answer's embedding is to its question's.

``answer_relevance = cos(f(question), f(answer))`` for a
:class:`~genarch.protocols.FeatureExtractor` ``f`` of texts — for example the
pretrained :class:`~genarch.features.MiniLMEncoder` (``load_minilm()``), or a
lexical one (:class:`~genarch.features.TfidfVectorizer`) when no model is at
hand. Cosine is taken in float64; a zero vector gives 0. The range is
``[-1, 1]`` (``[0, 1]`` for non-negative features); higher is more relevant.

Limits: similarity is not correctness. An answer that repeats the question
scores high while answering nothing, and a right answer in other words may
score lower than a wrong one that shares the question's topic. The score is
only as good as the extractor, and is comparable only under the same one.
"""

from __future__ import annotations

from typing import Any

import torch

from genarch.errors import InvalidInputError
from genarch.evaluation._text import output_text
from genarch.orchestration.citations import Answer, NotFound
from genarch.protocols import FeatureExtractor
from genarch.schemas import Evaluation
from genarch.validation import describe, require_text

__all__ = ["AnswerRelevance"]


class AnswerRelevance:
    """Cosine similarity of question and answer features.

    Args:
        extractor: a fitted :class:`~genarch.protocols.FeatureExtractor` of ``str``.

    ``evaluate(question, answer)``: ``question`` a ``str``; ``answer`` a
    ``str``, a :class:`~genarch.schemas.TextResult`, a RAG
    :class:`~genarch.orchestration.citations.Answer` (its statements, without
    citation markers) or :class:`~genarch.orchestration.citations.NotFound`
    (scores 0: no answer). Scores: ``answer_relevance``.

    Examples:
        >>> from genarch.features import TfidfVectorizer
        >>> extractor = TfidfVectorizer().fit(["how do I sort a list", "lists sort in place", "tuples"])
        >>> relevance = AnswerRelevance(extractor)
        >>> relevance.evaluate("how do I sort a list", "how do I sort a list").scores["answer_relevance"]
        1.0
    """

    def __init__(self, extractor: FeatureExtractor[str]) -> None:
        if not callable(getattr(extractor, "extract", None)):
            raise InvalidInputError(
                f"AnswerRelevance expected extractor as a FeatureExtractor, got {describe(extractor)}"
            )
        self.extractor = extractor

    def __repr__(self) -> str:
        return f"AnswerRelevance({self.extractor!r})"

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        """The cosine similarity of ``request`` (the question) and ``result`` (the answer).

        Raises:
            InvalidInputError: ``request`` is not a str, or ``result`` is none
                of the accepted answer types.
        """
        question = require_text(request, "AnswerRelevance.evaluate", name="request")
        if isinstance(result, NotFound):
            return Evaluation(
                scores={"answer_relevance": 0.0}, details={"note": f"not found ({result.reason})"}
            )
        if isinstance(result, Answer):
            answer = " ".join(statement.text for statement in result.statements)
        else:
            answer = output_text(result, "AnswerRelevance.evaluate")
        features = self.extractor.extract([question, answer]).detach().double().cpu()
        if features.ndim != 2 or features.shape[0] != 2:
            raise InvalidInputError(
                f"AnswerRelevance: the extractor returned shape {tuple(features.shape)} "
                "for 2 texts, expected (2, dim)"
            )
        norms = features.norm(dim=1)
        if bool((norms == 0).any()):
            return Evaluation(
                scores={"answer_relevance": 0.0}, details={"note": "a text has zero features"}
            )
        cosine = float(torch.dot(features[0], features[1]) / (norms[0] * norms[1]))
        return Evaluation(scores={"answer_relevance": max(-1.0, min(1.0, cosine))})
