"""Is a RAG answer grounded in what it cites? Groundedness and citation precision.

An :class:`~genarch.orchestration.citations.Answer` is a list of statements,
each citing sources by number. "Supported" is defined lexically, so that it is
deterministic and checkable by hand:

* the **content tokens** of a text are its :func:`~genarch.evaluation.rouge_tokens`
  (lowercase ASCII letters and digits) that are not in :data:`STOPWORDS`
  (articles, pronouns, auxiliaries, prepositions, conjunctions), as a set;
* the **support** of a statement by some texts is the share of the
  statement's content tokens that occur among the content tokens of those
  texts (1 when the statement has no content token);
* a statement is **supported** by those texts when its support is at least
  ``threshold`` (default 0.75).

The cited text of a citation is the chunk of the source it names (from
``answer.sources``), or the citation's quote when that source is not in the
answer. Then:

* **groundedness** = the share of statements supported by the union of their
  cited chunks (a statement without a citation is unsupported);
* **citation precision** = the share of (statement, citation) pairs whose
  chunk alone supports the statement — a citation that adds nothing is
  imprecise even when another citation carries the statement.

An answer that states nothing (:class:`~genarch.orchestration.citations.NotFound`,
or no statements) scores 1 on both: it claims nothing unsupported; count
refusals separately. An answer with statements but no citation scores 0 on both.

Limits: token containment is not entailment. A statement that reuses a
chunk's words to say something else ("X is not Y" from "X is Y" — ``not`` is a
stop word) counts as supported, and a faithful paraphrase in other words does
not. Use it as a cheap, reproducible screen; for judgements, read the answers.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.evaluation._text import rouge_tokens
from genarch.orchestration.citations import Answer, Citation, NotFound
from genarch.schemas import Config, Evaluation
from genarch.validation import describe

__all__ = ["STOPWORDS", "Groundedness", "GroundednessConfig", "content_tokens", "support"]

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "they",
        "them",
        "their",
        "he",
        "him",
        "his",
        "she",
        "her",
        "we",
        "us",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "may",
        "might",
        "must",
        "shall",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "as",
        "into",
        "about",
        "than",
        "then",
        "and",
        "or",
        "but",
        "not",
        "no",
        "nor",
        "so",
        "if",
        "also",
        "s",
        "t",
    ]
)
"""Words that carry no claim of their own; they never count for or against support."""


def content_tokens(text: str) -> frozenset[str]:
    """The distinct tokens of ``text`` that are not :data:`STOPWORDS`.

    Examples:
        >>> sorted(content_tokens("The list is sorted in place."))
        ['list', 'place', 'sorted']
    """
    return frozenset(t for t in rouge_tokens(text) if t not in STOPWORDS)


def support(statement: str, texts: list[str]) -> float:
    """The share of ``statement``'s content tokens found in ``texts`` (1 when it has none).

    Examples:
        >>> support("Lists are sorted in place.", ["sort() sorts a list in place"])
        0.3333333333333333
    """
    claim = content_tokens(statement)
    if not claim:
        return 1.0
    found = frozenset().union(*(content_tokens(t) for t in texts)) if texts else frozenset()
    return len(claim & found) / len(claim)


class GroundednessConfig(Config):
    """Settings of :class:`Groundedness`.

    Attributes:
        threshold: the least support (share of content tokens found in the
            cited text) for a statement to count as supported.
    """

    threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.75


class Groundedness(Configured[GroundednessConfig]):
    """Groundedness and citation precision of a RAG answer (see the module for definitions).

    ``evaluate(question, answer)``: ``question`` is not read; ``answer`` is an
    :class:`~genarch.orchestration.citations.Answer` or
    :class:`~genarch.orchestration.citations.NotFound`. Scores:
    ``groundedness`` and ``citation_precision`` on ``[0, 1]``; ``details``
    lists the unsupported statements' indices.

    Examples:
        >>> from genarch.orchestration.citations import Source, parse_answer
        >>> from genarch.schemas import Chunk
        >>> chunk = Chunk(id="d#0", document_id="d", text="Tuples are immutable sequences.", start=0, end=31)
        >>> sources = (Source(number=1, chunk=chunk, score=1.0),)
        >>> text = "Tuples are immutable [1]. Tuples are faster than lists [1]."
        >>> answer = Answer(question="q", text=text, statements=parse_answer(text, sources), sources=sources)
        >>> Groundedness().evaluate("q", answer).scores
        {'groundedness': 0.5, 'citation_precision': 0.5}
    """

    def _cited_text(self, citation: Citation, chunks: dict[int, str]) -> str:
        return chunks.get(citation.source, citation.quote)

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        """Score how well ``result``'s statements are supported by what they cite.

        Raises:
            InvalidInputError: ``result`` is not an Answer or NotFound.
        """
        if isinstance(result, NotFound):
            return Evaluation(
                scores={"groundedness": 1.0, "citation_precision": 1.0},
                details={"note": f"not found ({result.reason}): no statement to check"},
            )
        if not isinstance(result, Answer):
            raise InvalidInputError(
                f"Groundedness.evaluate expected result as an Answer or NotFound, got {describe(result)}"
            )
        if not result.statements:
            return Evaluation(
                scores={"groundedness": 1.0, "citation_precision": 1.0},
                details={"note": "no statement to check"},
            )
        chunks = {source.number: source.chunk.text for source in result.sources}
        threshold = self.config.threshold
        supported, unsupported, precise, pairs = 0, [], 0, 0
        for index, statement in enumerate(result.statements):
            cited = [self._cited_text(c, chunks) for c in statement.citations]
            if cited and support(statement.text, cited) >= threshold:
                supported += 1
            else:
                unsupported.append(str(index))
            for text in cited:
                pairs += 1
                precise += support(statement.text, [text]) >= threshold
        return Evaluation(
            scores={
                "groundedness": supported / len(result.statements),
                "citation_precision": precise / pairs if pairs else 0.0,
            },
            details={"unsupported_statements": ",".join(unsupported)},
        )
