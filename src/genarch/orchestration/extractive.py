"""An extractive answerer: the best-supported sentences of the sources, cited exactly.

:class:`ExtractiveGenerator` needs no model. It splits each source into
sentences (with exact character offsets), scores every sentence by how much of
the question's content it contains (a heading or signature line lends its
words to the sentence after it, or to those indented under it:
``heading_scope``) — each question word weighted by its
inverse frequency among the candidate sentences, so rare words count more —
and answers with the best ``max_sentences`` sentences whose support reaches
``min_support`` (a sentence that ends in a colon, "The syntax is:", takes
the short paragraph it introduces, and one that opens by referring back,
"This means ...", the sentence before it). Interactive examples and other
code lines are never answers. With none, there is no answer, and
:class:`~genarch.orchestration.rag.RAG` returns
:class:`~genarch.orchestration.citations.NotFound`.

With a sentence ``encoder`` (any ``FeatureExtractor[str]``, e.g.
:func:`~genarch.features.load_minilm`), a sentence's score mixes that lexical
support with the cosine similarity of its embedding to the question's
(``semantic_weight``), so a sentence that answers in other words than the
question's can win; and when even the best sentence scores under
``min_confidence``, there is no answer. Only the candidate sentences are
embedded, each once per generator (a text-keyed cache), so no corpus-wide
index is needed; with ``shortlist``, only that many of them, those with the
most lexical support, so that reading more sources costs no more embedding.
With topic titles (``titles=``), ``title_in_context`` reads each sentence
with its topic's title (embedded in front of it, its words counted as the
sentence's), so the title tells apart sentences that read alike in different
topics and stands in for the subject an answer leaves out.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import torch
from pydantic import Field

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.orchestration.citations import (
    Citation,
    Source,
    Statement,
    content_terms,
    light_stem,
)
from genarch.orchestration.grounded_prompt import NOT_FOUND_MARKER, parse_prompt
from genarch.orchestration.retrievers import embed_texts
from genarch.protocols import FeatureExtractor
from genarch.schemas import Config, TextRequest, TextResult
from genarch.validation import describe, require_instance

__all__ = ["DeclineGate", "ExtractiveConfig", "ExtractiveGenerator", "sentence_spans"]

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


# An operator symbol standing alone ('The "^" operator', "x ** y"), not markup
# such as "*emphasis*" or a hyphen inside a word.
_SYMBOL = re.compile(r"(?<![\w*/<>=!-])(\*\*|//|<<|>>|[-+*/%@&|^~<>])(?![\w*/<>=])")


def _terms(text: str) -> set[str]:
    """What a question and a sentence are compared by: the content words of
    ``text`` folded by :func:`~genarch.orchestration.citations.light_stem`
    ("floating" and "float" match), and the operator symbols standing alone
    in it ("What does ^ do?" is about ``^``)."""
    words = {light_stem(term) for term in content_terms(text)}
    return words | {f"symbol:{m.group(1)}" for m in _SYMBOL.finditer(text)}


_INDENTED_LINE = re.compile(r"^[ \t]+\S", re.MULTILINE)


def _indentation(text: str, position: int) -> int:
    """How far the line holding ``position`` is indented (its leading spaces)."""
    line = text.rfind("\n", 0, position) + 1
    stop = text.find("\n", line)
    content = text[line : len(text) if stop < 0 else stop]
    return len(content) - len(content.lstrip(" \t"))


_FINISHED = re.compile(r"[.!?:][\"')\]\u201d\u2019]*\Z")

# Code that reads like a finished sentence: a line of an interactive example
# (">>> try:", "...     raise TypeError"; a span that runs into the next line's
# "..." prompt is one too), a function or class header, or a call standing
# alone ("print('Case 4, I match anything!')").
_PROMPT_LINE = re.compile(r"^[ \t]*(?:>>>|\.\.\.)(?=\s|\Z)", re.MULTILINE)
_CODE_STATEMENT = re.compile(r"(?:async\s+)?(?:def|class)\s+\w+\s*[(:\[]|[\w.]+\(.*\)\Z", re.DOTALL)


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
        and not _PROMPT_LINE.search(sentence)
        and not _CODE_STATEMENT.match(sentence)
    )


def _continuation_end(text: str, end: int) -> int:
    """Where an answer ending at ``end`` ends once it shows what it introduces.

    A sentence that ends in a colon ("The syntax is:", "The from form uses a
    slightly more complex process:") says nothing by itself: it takes the
    paragraph after it (a list item, a grammar rule, an example), or that
    paragraph's first sentence when the paragraph is long. Nothing is taken
    past ``_CONTINUATION_CHARS`` or the end of ``text``; any other sentence ends
    where it ends.
    """
    if not text[:end].rstrip("\"')]\u201d\u2019").endswith(":"):
        return end
    rest = text[end:]
    start = len(rest) - len(rest.lstrip())
    blank = _PARAGRAPH.search(rest, start)
    paragraph = rest[start : blank.start() if blank else len(rest)].rstrip()
    if paragraph and len(paragraph) > _CONTINUATION_CHARS:
        spans = sentence_spans(paragraph)
        paragraph = paragraph[: spans[0][1]] if spans else ""
    if not paragraph or len(paragraph) > _CONTINUATION_CHARS:
        return end
    return end + start + len(paragraph)


# A sentence that opens by pointing back ("This means ...", "It is ...",
# "Thus, ...") says little without the sentence it points to.
_REFERS_BACK = re.compile(
    r"(?:This|That|These|Those|It|Its|They|Their|Such|Thus|Therefore|Hence|Otherwise|"
    r"However|Also|In (?:this|that|such a) case)\b"
)


def _antecedent_start(text: str, start: int) -> int:
    """Where an answer starting at ``start`` starts once it reads on its own.

    A sentence that refers back ("This can be used to get the value of the
    cell") takes the sentence before it ("A cell object has the attribute
    cell_contents.") when that one is prose of the same paragraph; any other
    sentence starts where it starts.
    """
    if not _REFERS_BACK.match(text, start):
        return start
    before = [span for span in sentence_spans(text[:start]) if span[1] <= start]
    if not before:
        return start
    previous_start, previous_end = before[-1]
    if _PARAGRAPH.search(text, previous_end, start) or not _is_prose(
        text[previous_start:previous_end]
    ):
        return start
    return previous_start


class ExtractiveConfig(Config):
    """Settings of :class:`ExtractiveGenerator`.

    Attributes:
        max_sentences: the most sentences in an answer.
        min_support: the least weighted share of the question's content words
            a sentence must contain to be used (0-1).
        max_sentence_chars: longer "sentences" (tables, grammar blocks) are skipped.
        relative_support: a sentence after the first must have at least this
            share of the first one's support (its score, with an encoder).
        rank_penalty: subtracted from a sentence's score per place its source
            is below the first: of two equally good sentences, the one from the
            better-ranked source wins.
        semantic_weight: with an encoder, a sentence's score is
            ``(1 - semantic_weight) * support + semantic_weight * cosine``
            (``min_support`` is then not applied: meaning can stand in for words).
        min_confidence: with an encoder, no answer when the best score of a
            candidate sentence (the mix above) is under this (``None``: no such
            check). Words and meaning together: a question that shares its
            rare words with a sentence needs less of the meaning, and the
            other way round. With a ``question_encoder``, the mix is taken with
            the encoder's own question vector (see :meth:`ExtractiveGenerator.confidence`).
            Not applied when the generator has a ``gate``, which decides instead.
        title_weight: with an encoder and topic titles (``titles=``), the
            cosine similarity of the question to the title of a sentence's
            document, times this, is added to the sentence's score: of two
            similar sentences, the one from the topic the question is about
            wins (pydoc topic titles such as "Floating point literals" name
            what a topic answers).
        shortlist: with an encoder, only this many candidate sentences are
            embedded and scored: those with the most lexical support (of
            equal support, the one from the better-ranked source). The
            others cannot be chosen. ``None``: every candidate. Embedding is
            what an answer costs, so this bounds the cost of reading many
            sources.
        title_in_context: with an encoder and topic titles, each sentence is
            read with its topic's title: embedded as ``"<title>: <heading>
            <sentence>"``, and the title's words count as the sentence's
            (an answer often leaves out the subject its topic is named for:
            "It continues with the next cycle" in "The continue statement").
        heading_scope: which sentences a heading or signature line (a line
            that is not prose, such as ``object.__getattr__(self, name)``)
            describes, lending them its words and, with an encoder, read in
            front of them: ``"sentence"``, the first sentence after it;
            ``"block"``, every sentence indented under it ("This method
            should return ..." in the second paragraph of a method's entry)
            and no other (an indented grammar rule or code line is no
            heading of the paragraph after it); in a text with no indented
            line (indentation cleaned away), the first sentence after it, as
            with ``"sentence"``.
    """

    max_sentences: Annotated[int, Field(ge=1)] = 2
    min_support: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    max_sentence_chars: Annotated[int, Field(ge=1)] = 600
    relative_support: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    rank_penalty: Annotated[float, Field(ge=0.0)] = 0.05
    semantic_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.7
    min_confidence: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    title_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    shortlist: Annotated[int, Field(ge=1)] | None = None
    title_in_context: bool = False
    heading_scope: Literal["sentence", "block"] = "sentence"


_CACHE_LIMIT = 50_000  # embedded sentences kept per generator
_CONTINUATION_CHARS = 300  # the most an answer that ends in a colon takes of what follows
_HEADING_CHARS = 200  # the most of a heading line embedded with the sentence after it
_SHORTLIST_RANK_PENALTY = 0.01  # per source place, when ranking sentences for the shortlist


@runtime_checkable
class DeclineGate(Protocol):
    """Decides whether the sources answer a question (see ``ExtractiveGenerator(gate=)``)."""

    def declines(self, question: str, confidence: float | None) -> bool:
        """Whether to say "not in the sources", given the best candidate's score
        (``None``: no candidate could be scored)."""
        ...


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
        encoder: embeds sentences and the question for semantic scoring
            (``None``: lexical support only).
        question_encoder: embeds the question instead of ``encoder`` (same
            ``dim``), e.g. a :class:`~genarch.features.QueryAdapter` learned
            from labelled questions; sentences keep ``encoder``'s vectors.
        titles: document id → title (e.g.
            :func:`~genarch.orchestration.retrievers.document_titles`), for the
            ``title_weight`` prior. It needs the sources' document ids, so it
            applies in :meth:`compose` (and :meth:`select` given
            ``document_ids``), not in :meth:`generate`, whose prompt is read
            as plain text.
        gate: decides whether to decline instead of ``min_confidence``: any
            object with ``declines(question, confidence) -> bool`` (a
            :class:`DeclineGate`), given the question and the best candidate's
            score (:meth:`confidence`), e.g. a learned
            :class:`~genarch.orchestration.answer_gate.AnswerGate` bound to the
            corpus. Needs an ``encoder``.

    Raises:
        InvalidInputError: ``encoder`` has no ``extract`` method, ``titles``
            is not a mapping of str to str, or ``gate`` has no ``declines``
            method, has no corpus bound, or comes without an encoder.
        ConfigError: bad settings.
    """

    def __init__(
        self,
        config: ExtractiveConfig | Mapping[str, Any] | None = None,
        *,
        encoder: FeatureExtractor[str] | None = None,
        question_encoder: FeatureExtractor[str] | None = None,
        titles: Mapping[str, str] | None = None,
        gate: DeclineGate | None = None,
        **fields: Any,
    ) -> None:
        for name, value in (("encoder", encoder), ("question_encoder", question_encoder)):
            if value is not None and not callable(getattr(value, "extract", None)):
                raise InvalidInputError(
                    f"ExtractiveGenerator expected {name} to be a FeatureExtractor[str] "
                    f"(with extract(texts)) or None, got {describe(value)}"
                )
        if question_encoder is not None and (
            encoder is None or getattr(question_encoder, "dim", None) != encoder.dim
        ):
            raise InvalidInputError(
                "ExtractiveGenerator: question_encoder needs an encoder of the same dim, got "
                f"{describe(question_encoder)} with encoder {describe(encoder)}"
            )
        if titles is not None and (
            not isinstance(titles, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in titles.items())
        ):
            raise InvalidInputError(
                "ExtractiveGenerator expected titles to be a mapping of document id (str) "
                f"to title (str) or None, got {describe(titles)}"
            )
        if gate is not None and not callable(getattr(gate, "declines", None)):
            raise InvalidInputError(
                "ExtractiveGenerator expected gate to have declines(question, confidence), "
                f"got {describe(gate)}"
            )
        if gate is not None and encoder is None:
            raise InvalidInputError(
                "ExtractiveGenerator: a gate decides on the encoder's confidences, "
                "so it needs an encoder, got encoder=None"
            )
        if gate is not None and hasattr(gate, "corpus") and gate.corpus is None:
            raise InvalidInputError(
                "ExtractiveGenerator: the gate has no corpus to count the question's terms in; "
                "give gate.with_corpus(documents)"
            )
        Configured.__init__(self, config, **fields)
        self.encoder = encoder
        self.gate = gate
        self.question_encoder = question_encoder
        self.titles = dict(titles) if titles is not None else {}
        self._vectors: dict[str, torch.Tensor] = {}
        self._question_vectors: dict[str, torch.Tensor] = {}

    def _embed(self, texts: list[str]) -> torch.Tensor:
        """Unit vectors of ``texts`` (``(len(texts), dim)``), each text embedded once."""
        assert self.encoder is not None
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            if len(self._vectors) + len(missing) > _CACHE_LIMIT:
                self._vectors.clear()
            vectors = embed_texts(self.encoder, missing, "ExtractiveGenerator encoder")
            vectors = torch.nn.functional.normalize(vectors, dim=1)
            self._vectors.update(zip(missing, vectors, strict=True))
        return torch.stack([self._vectors[t] for t in texts])

    def _question_vector(self, question: str, adapted: bool) -> torch.Tensor:
        """The question's unit vector: ``question_encoder``'s when given and ``adapted``,
        else ``encoder``'s."""
        text = " ".join(question.split())
        if self.question_encoder is None or not adapted:
            return self._embed([text])[0]
        if text not in self._question_vectors:
            if len(self._question_vectors) >= _CACHE_LIMIT:
                self._question_vectors.clear()
            vectors = embed_texts(
                self.question_encoder, [text], "ExtractiveGenerator question_encoder"
            )
            self._question_vectors[text] = torch.nn.functional.normalize(vectors, dim=1)[0]
        return self._question_vectors[text]

    def _similarities(self, question: str, sentences: list[str], adapted: bool) -> list[float]:
        """Cosine similarity of each sentence to the question."""
        similarities: list[float] = (
            self._embed(sentences) @ self._question_vector(question, adapted)
        ).tolist()
        return similarities

    # -- the core ----------------------------------------------------------------

    def _title_similarities(
        self, question: str, document_ids: Sequence[str], adapted: bool
    ) -> list[float]:
        """``title_weight`` times the cosine of the question to each text's document title."""
        weight = self._config.title_weight
        titles = [self.titles.get(d, "") for d in document_ids]
        if self.encoder is None or weight == 0.0 or not any(titles):
            return [0.0] * len(document_ids)
        known = sorted({t for t in titles if t})
        cosine = dict(zip(known, self._similarities(question, known, adapted), strict=True))
        return [weight * cosine[t] if t else 0.0 for t in titles]

    def _candidates(
        self, texts: Sequence[str], document_ids: Sequence[str] | None
    ) -> tuple[list[tuple[int, int, int, set[str]]], list[str]]:
        """Every sentence that can be an answer: (text index, start, end, its terms), and
        each as the encoder reads it (``[title: ][heading ]sentence``)."""
        if document_ids is not None and len(document_ids) != len(texts):
            raise InvalidInputError(
                f"ExtractiveGenerator expected one document id per text "
                f"({len(texts)}), got {len(document_ids)}"
            )
        candidates: list[tuple[int, int, int, set[str]]] = []
        described: list[str] = []  # each candidate as embedded: [title:] heading + sentence
        config = self._config
        with_titles = self.encoder is not None and config.title_in_context
        for index, text in enumerate(texts):
            # A heading or signature line ("str.partition(sep)") is not an answer,
            # but its words describe the first sentence after it.
            context: set[str] = set()
            heading = ""
            title = ""
            if with_titles and document_ids is not None:
                title = self.titles.get(document_ids[index], "")
            prefix = f"{title}: " if title else ""
            title_terms = _terms(title) if title else set()
            # With heading_scope="block", it describes instead the sentences indented
            # under it (the paragraphs of a method's entry under its signature), and
            # no sentence that is not (a grammar rule or code line is indented under
            # nothing; a section heading's words are the title's).
            block = -1  # the indentation of the heading whose block is open (-1: none)
            indented = _INDENTED_LINE.search(text) is not None  # else blocks cannot be seen
            headed = False  # the sentence before this one was a heading
            for start, end in sentence_spans(text):
                sentence = text[start:end]
                terms = _terms(sentence)
                indent = _indentation(text, start)
                inside = block >= 0 and indent > block
                if block >= 0 and not inside:
                    # The heading's block has ended. In text with no indented line at
                    # all (indentation cleaned away, as the quickstart's is), blocks
                    # cannot be seen: a heading then describes the sentence right
                    # after it, as with "sentence".
                    if not headed or indent < block or indented:
                        context, heading = set(), ""
                    block = -1
                if not _is_prose(sentence):
                    if not inside:  # a code line inside a described block keeps its heading
                        context = terms
                        heading = " ".join(sentence.split())[:_HEADING_CHARS]
                        block = indent if config.heading_scope == "block" else -1
                        headed = True
                    continue
                headed = False
                if end - start <= config.max_sentence_chars:
                    candidates.append((index, start, end, terms | context | title_terms))
                    described.append(prefix + f"{heading} {' '.join(sentence.split())}".strip())
                if block < 0:
                    context = set()
                    heading = ""
        return candidates, described

    def candidates(
        self, texts: Sequence[str], *, document_ids: Sequence[str] | None = None
    ) -> list[tuple[int, int, int, str]]:
        """Every sentence of ``texts`` that can be an answer: ``(text index, start, end,
        text)``, the text as the encoder reads it (with its topic's title and heading
        under ``title_in_context`` and ``heading_scope``), in the order of the texts.

        What :func:`~genarch.features.fit_query_adapter` learns to rank.

        Raises:
            InvalidInputError: ``document_ids`` does not give one id per text.
        """
        found, described = self._candidates(texts, document_ids)
        return [
            (i, start, end, text) for (i, start, end, _), text in zip(found, described, strict=True)
        ]

    def _scored(
        self,
        question: str,
        texts: Sequence[str],
        document_ids: Sequence[str] | None,
        *,
        adapted: bool = True,
    ) -> tuple[list[tuple[int, int, int]], list[float]]:
        """Every candidate sentence (text index, start, end) and its score (NaN: unusable);
        with ``adapted`` False, scored with the encoder's own question vector even when
        there is a ``question_encoder``."""
        candidates, described = self._candidates(texts, document_ids)
        wanted = Counter(dict.fromkeys(_terms(question), 1))
        config = self._config
        if not wanted or not candidates:
            return [], []
        frequency = Counter(term for *_, terms in candidates for term in terms & wanted.keys())
        weight = {t: math.log(1.0 + len(candidates) / (1.0 + frequency[t])) for t in wanted}
        total = sum(weight.values())
        supports = [
            sum(weight[t] for t in wanted.keys() & terms) / total for *_, terms in candidates
        ]
        spans = [(index, start, end) for index, start, end, _ in candidates]
        if self.encoder is None:
            return spans, [s if s >= config.min_support and s > 0.0 else math.nan for s in supports]
        chosen = list(range(len(candidates)))
        if config.shortlist is not None and len(candidates) > config.shortlist:
            # the most lexical support first; of equal support, the better-ranked source
            by_support = sorted(
                chosen, key=lambda i: (-(supports[i] - _SHORTLIST_RANK_PENALTY * spans[i][0]), i)
            )
            chosen = sorted(by_support[: config.shortlist])
        similarities = self._similarities(question, [described[i] for i in chosen], adapted)
        priors = self._title_similarities(question, document_ids or [""] * len(texts), adapted)
        mix = config.semantic_weight
        scores = [math.nan] * len(candidates)
        for i, similarity in zip(chosen, similarities, strict=True):
            scores[i] = (1.0 - mix) * supports[i] + mix * similarity + priors[spans[i][0]]
        return spans, scores

    def confidence(
        self,
        question: str,
        texts: Sequence[str],
        *,
        document_ids: Sequence[str] | None = None,
    ) -> float | None:
        """The best candidate sentence's score: what ``min_confidence`` is compared with.

        ``None`` when no sentence can be scored (no content word in the
        question, no prose in the texts, or, without an encoder, none with
        ``min_support``). Use it to calibrate ``min_confidence`` on your own
        questions (``benchmarks/eval_rag.py --calibrate`` does).

        With a ``question_encoder``, the scores are the encoder's own: an
        adapter learned to *rank* sentences moves the question away from
        where plain cosines are calibrated, so it orders the candidates while
        this decides whether the sources answer at all.

        Raises:
            InvalidInputError: ``document_ids`` does not give one id per text.
        """
        _, scores = self._scored(question, texts, document_ids, adapted=False)
        usable = [score for score in scores if not math.isnan(score)]
        return max(usable) if usable else None

    def select(
        self,
        question: str,
        texts: Sequence[str],
        *,
        document_ids: Sequence[str] | None = None,
    ) -> list[_Pick]:
        """The chosen sentences: which text, span in it, score; best first.

        ``document_ids`` (one per text) lets the ``title_weight`` prior see
        which topic each text comes from.

        Raises:
            InvalidInputError: ``document_ids`` does not give one id per text.
        """
        config = self._config
        spans, scores = self._scored(question, texts, document_ids)
        if not spans:
            return []
        if self.encoder is not None and (
            config.min_confidence is not None or self.gate is not None
        ):
            if self.question_encoder is None:
                usable = [score for score in scores if not math.isnan(score)]
                best = max(usable) if usable else None
            else:  # decided on the encoder's own scores (see confidence)
                best = self.confidence(question, texts, document_ids=document_ids)
            if self.gate is not None:
                if self.gate.declines(question, best):
                    return []
            elif config.min_confidence is not None and (
                best is None or best < config.min_confidence
            ):
                return []
        scored = []
        for (index, start, end), score in zip(spans, scores, strict=True):
            if not math.isnan(score):
                # A small prior for the retriever's order: of two equally good
                # sentences, the one from the better-ranked source wins.
                rank = score - config.rank_penalty * index
                scored.append(_Pick(index, start, end, score, rank))
        scored.sort(key=lambda p: (-round(p.rank, 9), p.index, p.end - p.start, p.start))
        picks: list[_Pick] = []
        seen: set[str] = set()
        for pick in scored:
            if picks and pick.support < config.relative_support * picks[0].support:
                break
            key = " ".join(texts[pick.index][pick.start : pick.end].split())
            if key in seen or any(  # overlapping chunks (and topics) repeat sentences
                p.index == pick.index and p.start <= pick.start < p.end for p in picks
            ):
                continue
            seen.add(key)
            # An answer ending in a colon shows what it introduces, and one that
            # refers back shows what it refers to (unless that is already an answer).
            text = texts[pick.index]
            start = _antecedent_start(text, pick.start)
            if any(p.index == pick.index and start < p.end and p.start < pick.end for p in picks):
                start = pick.start
            pick = replace(pick, start=start, end=_continuation_end(text, pick.end))
            picks.append(pick)
            if len(picks) == config.max_sentences:
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
        picks = self.select(
            question,
            [s.chunk.text for s in checked],
            document_ids=[s.chunk.document_id for s in checked],
        )
        for pick in picks:
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
