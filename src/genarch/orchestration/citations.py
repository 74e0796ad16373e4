"""Answers with citations: the records, and matching answer text to its sources.

Everything a RAG answer is made of, shared by :class:`~genarch.orchestration.rag.RAG`
and the generators that answer for it (such as
:class:`~genarch.orchestration.extractive.ExtractiveGenerator`):

* the records — a numbered :class:`Source`, a :class:`Citation` holding an exact
  character span of the source *document*, a :class:`Statement` (one sentence
  and its citations), and the two outcomes, :class:`Answer` and
  :class:`NotFound` (together :data:`RAGResult`);
* :class:`GroundedGenerator`, the protocol of a generator that cites by itself;
* the content words of a question (:func:`content_terms`) and how many of them
  the sources hold (:func:`term_coverage`);
* turning a generated text with ``[n]`` markers into statements whose
  citations point into the sources (:func:`parse_answer`, :func:`locate`), and
  back (:func:`answer_text`), and a readable rendering (:func:`format_result`).

Every :class:`Citation` can be checked: ``document.text[c.start:c.end] == c.quote``.
"""

from __future__ import annotations

import keyword
import logging
import re
from collections.abc import Sequence
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import Field

from genarch.errors import InvalidInputError
from genarch.schemas import Chunk, Record
from genarch.validation import describe

__all__ = [
    "Answer",
    "Citation",
    "GroundedGenerator",
    "NotFound",
    "NotFoundReason",
    "RAGResult",
    "Source",
    "Statement",
    "answer_text",
    "content_terms",
    "format_result",
    "light_stem",
    "locate",
    "parse_answer",
    "term_coverage",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ records


class Source(Record):
    """A retrieved chunk as numbered in the prompt (numbers start at 1)."""

    number: Annotated[int, Field(ge=1)]
    chunk: Chunk
    score: float


class Citation(Record):
    """Where a statement comes from: a source and an exact span of its document.

    Attributes:
        source: the source's number in the prompt.
        chunk_id, document_id: the chunk and the document it belongs to.
        start, end: character offsets into the *document's* text.
        quote: the document text between ``start`` and ``end``.
        verbatim: the statement was found word for word in the source (the
            span is that passage); ``False``: it was not (the span is the
            whole chunk the generator cited).
    """

    source: Annotated[int, Field(ge=1)]
    chunk_id: str
    document_id: str
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    quote: str
    verbatim: bool = True


class Statement(Record):
    """One sentence of an answer with the citations that support it."""

    text: str
    citations: tuple[Citation, ...] = ()


class Answer(Record):
    """An answer found in the sources.

    Attributes:
        question: what was asked.
        text: the answer with ``[n]`` citation markers.
        statements: the answer sentence by sentence, each with its citations.
        sources: every source the generator was shown.
        prompt: the prompt given to a text generator (``None`` for a grounded one).
    """

    kind: Literal["answer"] = "answer"
    question: str
    text: str
    statements: tuple[Statement, ...]
    sources: tuple[Source, ...]
    prompt: str | None = None

    @property
    def citations(self) -> list[Citation]:
        """Every citation, in order, without repeats."""
        seen: dict[tuple[int, int, int], Citation] = {}
        for statement in self.statements:
            for citation in statement.citations:
                seen.setdefault((citation.source, citation.start, citation.end), citation)
        return list(seen.values())

    @property
    def fully_cited(self) -> bool:
        """Whether every statement has at least one citation."""
        return all(statement.citations for statement in self.statements)


NotFoundReason = Literal["no_results", "low_score", "low_coverage", "no_support", "declined"]


class NotFound(Record):
    """The sources do not answer the question.

    Attributes:
        reason: ``"no_results"`` (retrieval found nothing), ``"low_score"`` (the
            best score is under ``min_score``), ``"low_coverage"`` (too few of
            the question's content words are in the sources), ``"no_support"``
            (the generator found no supported sentence), ``"declined"`` (a text
            generator replied that the sources lack the answer).
        detail: a sentence saying why, with the numbers.
        best_score, coverage: the retrieval confidence measures.
        sources: what was retrieved (possibly empty).
    """

    kind: Literal["not_found"] = "not_found"
    question: str
    reason: NotFoundReason
    detail: str
    best_score: float | None = None
    coverage: float | None = None
    sources: tuple[Source, ...] = ()


RAGResult = Annotated[Answer | NotFound, Field(discriminator="kind")]
"""What :meth:`RAG.run <genarch.orchestration.rag.RAG.run>` returns: an :class:`Answer` or a :class:`NotFound`."""


@runtime_checkable
class GroundedGenerator(Protocol):
    """A generator that answers from sources and cites them itself.

    ``compose(question, sources)`` returns the answer as statements whose
    citations hold exact document spans; an empty list means the sources do
    not support an answer. Deterministic.
    """

    def compose(self, question: str, sources: Sequence[Source]) -> list[Statement]: ...


# ------------------------------------------------------------------ words


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_STOPWORD_TEXT = (
    "a about above after again against all also am an and any are as at be because been "
    "before being below between both but by can could did do does doing down during each "
    "either else every few for from further had has have having he her here hers him his "
    "how i if in into is it its itself just let like may me might more most much must my "
    "no nor not now of off on once one only or other our ours out over own same shall she "
    "should so some such than that the their theirs them then there these they this those "
    "through to too under until up upon use used uses using very was we were what when "
    "where whether which while who whom whose why will with within without would you your "
    "yours python happen happens mean means get gets give gives tell way ways work works "
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)
_SYNTAX_NOUNS = frozenset(
    (
        *("statement", "statements", "clause", "clauses", "loop", "loops", "keyword"),
        *("keywords", "operator", "operators", "expression", "expressions", "block", "test"),
    )
)
_QUOTES = frozenset("\"'`\u201c\u2018")


def _stem(word: str) -> str:
    """A light, consistent plural fold: ``strings`` and ``string`` match."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_INFLECTIONS = (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", ""))


def light_stem(token: str) -> str:
    """``token`` with one English inflection removed, so word forms share a token.

    Only alphabetic tokens longer than three characters change: the first of
    ``-ies`` (→ ``y``), ``-ing``, ``-ed``, ``-es``, ``-s`` (not ``-ss``,
    ``-us``, ``-is``) and ``-ly`` that leaves at least three characters is
    removed, then a final ``e`` of a stem longer than four characters. It is
    deliberately light (no Porter rules): "float" and "floating" meet, and
    code words such as ``__getattr__`` or ``0x1f`` are kept as they are.

    Examples:
        >>> [light_stem(t) for t in ("literals", "literal", "defines", "define", "defined")]
        ['literal', 'literal', 'defin', 'defin', 'defin']
        >>> [light_stem(t) for t in ("floating", "float", "class", "classes", "is", "__init__")]
        ['float', 'float', 'class', 'class', 'is', '__init__']
    """
    if len(token) <= 3 or not token.isalpha():
        return token
    for suffix, replacement in _INFLECTIONS:
        if (
            token.endswith(suffix)
            and len(token) - len(suffix) >= 3
            and not (suffix == "s" and token.endswith(("ss", "us", "is")))
        ):
            token = token[: len(token) - len(suffix)] + replacement
            break
    if token.endswith("e") and len(token) > 4:
        token = token[:-1]
    return token


def content_terms(text: str) -> list[str]:
    """The content words of ``text``: lower-cased, plural-folded, stop words removed.

    A stop word that is a Python keyword still counts when it is quoted or
    named as syntax ("the with statement", "a for loop"), since that is what
    such a question is about.

    Examples:
        >>> content_terms("What does the break statement do in loops?")
        ['break', 'statement', 'loop']
        >>> content_terms("When is the else clause of a for loop run?")
        ['else', 'clause', 'for', 'loop', 'run']
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"content_terms expected str, got {describe(text)}")
    matches = list(_WORD.finditer(text))
    terms = []
    for index, match in enumerate(matches):
        word = match.group().lower()
        if word in _STOPWORDS:
            before = matches[index - 1].group().lower() if index else ""
            after = matches[index + 1].group().lower() if index + 1 < len(matches) else ""
            quoted = text[match.start() - 1 : match.start()] in _QUOTES
            named = before in ("the", "a", "an") and after in _SYNTAX_NOUNS
            if not (word in _KEYWORDS and (quoted or named)):
                continue
        else:
            word = _stem(word)
            if word in _STOPWORDS or (len(word) < 2 and not word.isdigit()):
                continue
        terms.append(word)
    return terms


def term_coverage(question: str, texts: Sequence[str]) -> float:
    """The fraction of the question's distinct content words found in ``texts``.

    Words are compared by their :func:`light_stem` ("compute" is found in
    "computed"). A question with no content words has coverage 1.

    Examples:
        >>> term_coverage("capital of France?", ["Paris is the capital."])
        0.5
    """
    wanted = {light_stem(term) for term in content_terms(question)}
    if not wanted:
        return 1.0
    present = {light_stem(term) for text in texts for term in content_terms(text)}
    return len(wanted & present) / len(wanted)


# ------------------------------------------------------------------ citations

_MARKERS = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+")
_SENTENCE_GAP = re.compile(r"(?<=[.!?])\s+")


def locate(claim: str, source: Source) -> Citation:
    """The citation of ``claim`` in ``source``: its exact span if it is there.

    The claim is looked for word for word, allowing any whitespace between
    words (line breaks in the source); if it is not in the source, the
    citation spans the whole chunk with ``verbatim=False``.

    Examples:
        >>> chunk = Chunk(id="d#0", document_id="d", text="x = 1\\nSets are\\n  unordered.", start=10, end=37)
        >>> c = locate("Sets are unordered.", Source(number=1, chunk=chunk, score=0.5))
        >>> (c.start, c.end, c.quote, c.verbatim)
        (16, 37, 'Sets are\\n  unordered.', True)
    """
    chunk = source.chunk
    words = claim.split()
    match = None
    if words:
        pattern = r"\s+".join(re.escape(word) for word in words)
        match = re.search(pattern, chunk.text)
        if match is None and words[-1][-1:] in ".!?":  # the source may go on after the words
            words[-1] = words[-1][:-1]
            match = re.search(r"\s+".join(re.escape(word) for word in words if word), chunk.text)
    if match is None:
        return Citation(
            source=source.number,
            chunk_id=chunk.id,
            document_id=chunk.document_id,
            start=chunk.start,
            end=chunk.end,
            quote=chunk.text,
            verbatim=False,
        )
    return Citation(
        source=source.number,
        chunk_id=chunk.id,
        document_id=chunk.document_id,
        start=chunk.start + match.start(),
        end=chunk.start + match.end(),
        quote=match.group(),
        verbatim=True,
    )


def parse_answer(text: str, sources: Sequence[Source]) -> list[Statement]:
    """Split a generated answer into statements and turn ``[n]`` markers into citations.

    A marker group at the start of a sentence belongs to the sentence before it
    (``"A. [1] B. [2]"`` cites 1 for A and 2 for B). Numbers that name no
    source are dropped (and logged).

    Examples:
        >>> chunk = Chunk(id="d#0", document_id="d", text="Sets are unordered. Lists keep order.", start=0, end=37)
        >>> statements = parse_answer("Lists keep order [1].", [Source(number=1, chunk=chunk, score=1.0)])
        >>> statements[0].text, statements[0].citations[0].quote
        ('Lists keep order.', 'Lists keep order.')
    """
    by_number = {source.number: source for source in sources}
    segments = [s for s in _SENTENCE_GAP.split(text.strip()) if s.strip()]
    merged: list[str] = []
    for segment in segments:
        leading = _LEADING_MARKERS.match(segment)
        if leading and merged:
            merged[-1] += " " + leading.group().strip()
            segment = segment[leading.end() :]
        if segment.strip():
            merged.append(segment.strip())
    statements = []
    for sentence in merged:
        numbers: list[int] = []
        for group in _MARKERS.findall(sentence):
            for number in re.split(r"\s*[,;]\s*", group):
                if int(number) in by_number and int(number) not in numbers:
                    numbers.append(int(number))
                elif int(number) not in by_number:
                    logger.warning("answer cites source [%s], which was not given", number)
        claim = " ".join(_MARKERS.sub(" ", sentence).split())
        claim = re.sub(r"\s+([.!?,;:])", r"\1", claim)
        if not claim:
            continue
        citations = tuple(locate(claim, by_number[n]) for n in numbers)
        statements.append(Statement(text=claim, citations=citations))
    return statements


def answer_text(statements: Sequence[Statement]) -> str:
    """Statements joined into one text with ``[n]`` markers after each sentence."""
    parts = []
    for statement in statements:
        numbers = sorted({c.source for c in statement.citations})
        markers = "".join(f"[{n}]" for n in numbers)
        parts.append(f"{statement.text} {markers}".strip())
    return " ".join(parts)


# ------------------------------------------------------------------ rendering


def format_result(result: Answer | NotFound, *, quote_chars: int = 100) -> str:
    """A readable rendering of a result: the answer and its numbered citations.

    Examples:
        >>> print(format_result(NotFound(question="Why?", reason="no_results", detail="retrieval found nothing")))
        Q: Why?
        A: (not found in the sources: retrieval found nothing)
    """
    lines = [f"Q: {result.question}"]
    if isinstance(result, NotFound):
        lines.append(f"A: (not found in the sources: {result.detail})")
        return "\n".join(lines)
    lines.append(f"A: {result.text}")
    for citation in result.citations:
        quote = " ".join(citation.quote.split())
        if len(quote) > quote_chars:
            quote = quote[: quote_chars - 1] + "…"
        lines.append(
            f"   [{citation.source}] {citation.document_id} "
            f"chars {citation.start}-{citation.end}: \u201c{quote}\u201d"
        )
    return "\n".join(lines)
