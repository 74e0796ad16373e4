"""An extractive answerer: the best-supported sentences of the sources, cited exactly.

:class:`ExtractiveGenerator` needs no model. It splits each source into
sentences (with exact character offsets), scores every sentence by how much of
the question's content it contains (a heading or signature line just before a
sentence lends it its words) — each question word weighted by its
inverse frequency among the candidate sentences, so rare words count more —
and answers with the best ``max_sentences`` sentences whose support reaches
``min_support``. With none, there is no answer, and
:class:`~genarch.orchestration.rag.RAG` returns
:class:`~genarch.orchestration.citations.NotFound`.

It serves RAG both ways:

* as a :class:`~genarch.orchestration.citations.GroundedGenerator`:
  ``compose(question, sources)`` returns statements whose citations are exact
  spans of the source documents;
* as a ``Generator[TextRequest, TextResult]``: ``generate(request)`` reads the
  question and sources from a :func:`~genarch.orchestration.grounded_prompt.build_prompt`
  prompt and answers in text with ``[n]`` markers (or ``NOT_FOUND``), like an
  LLM would — so it can stand in for one anywhere.

Examples:
    >>> from genarch.schemas import Chunk
    >>> from genarch.orchestration.citations import Source
    >>> text = "Lists are mutable. Tuples are immutable sequences. Both can be indexed."
    >>> source = Source(number=1, score=1.0, chunk=Chunk(
    ...     id="seq#0", document_id="seq", text=text, start=0, end=len(text)))
    >>> [statement] = ExtractiveGenerator(max_sentences=1).compose("Are tuples immutable?", [source])
    >>> statement.text, statement.citations[0].start, statement.citations[0].end
    ('Tuples are immutable sequences.', 19, 50)
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.orchestration.citations import Citation, Source, Statement, content_terms
from genarch.orchestration.grounded_prompt import NOT_FOUND_MARKER, parse_prompt
from genarch.schemas import Config, TextRequest, TextResult
from genarch.validation import describe, require_instance

__all__ = ["ExtractiveConfig", "ExtractiveGenerator", "sentence_spans"]

_ENDS = re.compile(r"[.!?][\"')\]]*(?=\s)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "cf", "vs", "mr", "dr", "no", "approx", "resp"})


_LONGEST_ABBREVIATION = max(map(len, _ABBREVIATIONS))
_WORD_BEFORE_DOT = re.compile(r"[\w.]+\Z")


def _after_abbreviation(text: str, end: int) -> bool:
    """Whether the ``.`` at ``end`` closes an abbreviation such as "e.g.".

    The word before the dot is the run of word characters and dots that ends
    there. Only a window one longer than the longest abbreviation is read: a
    run that fills it is too long to be one. (Reading back from the start of
    the text, as a regex search over ``text[:end]`` would, takes time
    quadratic in the number of sentence ends.)
    """
    if text[end] != ".":
        return False
    window = max(0, end - _LONGEST_ABBREVIATION - 1)
    word = _WORD_BEFORE_DOT.search(text, window, end)
    return word is not None and word.group().lower() in _ABBREVIATIONS


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, whitespace trimmed.

    Sentences end at ``.``, ``!`` or ``?`` followed by space (not after
    abbreviations such as "e.g."), and at blank lines.

    Examples:
        >>> text = "First one, e.g. this.  Second?\\n\\nThird"
        >>> [text[s:e] for s, e in sentence_spans(text)]
        ['First one, e.g. this.', 'Second?', 'Third']
    """
    cuts = {0, len(text)}
    for match in _PARAGRAPH.finditer(text):
        cuts.update((match.start(), match.end()))
    for match in _ENDS.finditer(text):
        if _after_abbreviation(text, match.start()):
            continue
        cuts.add(match.end())
    ordered = sorted(cuts)
    spans = []
    for start, end in itertools.pairwise(ordered):
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            offset = start + (len(piece) - len(piece.lstrip()))
            spans.append((offset, offset + len(stripped)))
    return spans


_FINISHED = re.compile(r"[.!?:][\"')\]\u201d\u2019]*\Z")


def _is_prose(sentence: str) -> bool:
    """A finished sentence of mostly letters: not a signature, table row, grammar
    rule, code line or heading underline."""
    visible = [ch for ch in sentence if not ch.isspace()]
    letters = sum(ch.isalpha() for ch in visible)
    return (
        bool(_FINISHED.search(sentence))
        and letters >= 0.6 * len(visible)
        and "::=" not in sentence
        and sentence.count("|") < 2
        and not re.search(r"[*=~^+-]{4,}", sentence)
    )


class ExtractiveConfig(Config):
    """Settings of :class:`ExtractiveGenerator`.

    Attributes:
        max_sentences: the most sentences in an answer.
        min_support: the least weighted share of the question's content words
            a sentence must contain to be used (0-1).
        max_sentence_chars: longer "sentences" (tables, grammar blocks) are skipped.
        relative_support: a sentence after the first must have at least this
            share of the first one's support.
    """

    max_sentences: Annotated[int, Field(ge=1)] = 2
    min_support: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    max_sentence_chars: Annotated[int, Field(ge=1)] = 600
    relative_support: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8


_SOURCE_RANK_PENALTY = 0.05


@dataclass(frozen=True)
class _Pick:
    index: int  # which text
    start: int
    end: int
    support: float
    rank: float = 0.0


class ExtractiveGenerator(Configured[ExtractiveConfig]):
    """Answers with the sentences of the sources that best support the question.

    Deterministic and stateless: the same question and sources always give the
    same answer. Requests are :class:`~genarch.schemas.TextRequest`\\ s whose
    prompt was built by :func:`~genarch.orchestration.grounded_prompt.build_prompt`;
    sampling settings are ignored (nothing is sampled).

    Args:
        config: see :class:`ExtractiveConfig`; keyword fields are shorthand.
    """

    # -- the core ----------------------------------------------------------------

    def select(self, question: str, texts: Sequence[str]) -> list[_Pick]:
        """The chosen sentences: which text, span in it, support; best first."""
        wanted = Counter(content_terms(question))
        candidates: list[tuple[int, int, int, set[str]]] = []
        for index, text in enumerate(texts):
            # A heading or signature line ("str.partition(sep)") is not an answer,
            # but its words describe the first sentence after it.
            context: set[str] = set()
            for start, end in sentence_spans(text):
                sentence = text[start:end]
                terms = set(content_terms(sentence))
                if not _is_prose(sentence):
                    context = terms
                    continue
                if end - start <= self._config.max_sentence_chars:
                    candidates.append((index, start, end, terms | context))
                context = set()
        if not wanted or not candidates:
            return []
        frequency = Counter(term for *_, terms in candidates for term in terms & wanted.keys())
        weight = {t: math.log(1.0 + len(candidates) / (1.0 + frequency[t])) for t in wanted}
        total = sum(weight.values())
        scored = []
        for index, start, end, terms in candidates:
            support = sum(weight[t] for t in wanted.keys() & terms) / total
            if support >= self._config.min_support and support > 0.0:
                # A small prior for the retriever's order: of two equally supported
                # sentences, the one from the better-ranked source wins.
                rank = support - _SOURCE_RANK_PENALTY * index
                scored.append(_Pick(index, start, end, support, rank))
        scored.sort(key=lambda p: (-round(p.rank, 9), p.index, p.end - p.start, p.start))
        picks: list[_Pick] = []
        seen: set[str] = set()
        for pick in scored:
            if picks and pick.support < self._config.relative_support * picks[0].support:
                break
            key = " ".join(texts[pick.index][pick.start : pick.end].split())
            if key in seen:  # overlapping chunks repeat sentences
                continue
            seen.add(key)
            picks.append(pick)
            if len(picks) == self._config.max_sentences:
                break
        return picks

    def compose(self, question: str, sources: Sequence[Source]) -> list[Statement]:
        """Statements with exact citations (see :class:`~genarch.orchestration.citations.GroundedGenerator`).

        Raises:
            InvalidInputError: ``question`` is not a str or a source is not a Source.
        """
        require_instance(question, str, "ExtractiveGenerator.compose question")
        checked = [
            require_instance(s, Source, "ExtractiveGenerator.compose source") for s in sources
        ]
        statements = []
        for pick in self.select(question, [s.chunk.text for s in checked]):
            source = checked[pick.index]
            chunk = source.chunk
            citation = Citation(
                source=source.number,
                chunk_id=chunk.id,
                document_id=chunk.document_id,
                start=chunk.start + pick.start,
                end=chunk.start + pick.end,
                quote=chunk.text[pick.start : pick.end],
            )
            statements.append(
                Statement(text=" ".join(citation.quote.split()), citations=(citation,))
            )
        return statements

    # -- the Generator protocol ---------------------------------------------------

    def generate(self, request: TextRequest) -> TextResult:
        """Answer the question in a RAG prompt as text with ``[n]`` markers.

        Raises:
            InvalidInputError: not a TextRequest, or its prompt has no sources.
        """
        request = require_instance(request, TextRequest, "ExtractiveGenerator.generate")
        question, sources = parse_prompt(request.prompt)
        if request.max_new_tokens == 0:
            return TextResult(text="", finish_reason="length")
        picks = self.select(question, [text for _, text in sources])
        if not picks:
            return TextResult(text=NOT_FOUND_MARKER, finish_reason="end")
        parts = [
            f"{' '.join(sources[p.index][1][p.start : p.end].split())} [{sources[p.index][0]}]"
            for p in picks
        ]
        return TextResult(text=" ".join(parts), finish_reason="end")

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        """``[generate(r) for r in requests]``.

        Raises:
            InvalidInputError: see :meth:`generate`.
        """
        if not isinstance(requests, list | tuple):
            raise InvalidInputError(
                f"ExtractiveGenerator.generate_batch expected a list of TextRequests, got {describe(requests)}"
            )
        return [self.generate(request) for request in requests]
