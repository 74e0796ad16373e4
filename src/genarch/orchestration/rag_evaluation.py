"""Evaluating retrieval and RAG on labelled questions.

genarch ships a labelled question set over Python's documentation
(:func:`genarch.data.python_docs`): natural-language questions, each with the
topic(s) that answer it and a short supporting quote from that topic, plus a
few questions the documentation cannot answer (:func:`load_questions`), and a
second set written for the RAG assistant's answers (``load_questions(name="rag")``:
1028 answerable questions with answer spans, 337 Python questions the reference
does not answer).
Quotes are matched with whitespace normalised (runs of spaces and line breaks
count as one space), so re-wrapped documentation still matches.

* :func:`evaluate_retriever` — recall@k, MRR, hit@k and evidence@k (a retrieved
  chunk contains the supporting quote) for any
  :class:`~genarch.protocols.Retriever` over chunks of the documents.
* :func:`evaluate_rag` — what a :class:`~genarch.orchestration.rag.RAG`
  answers: how often a citation's span contains the supporting quote, how
  often it cites a right topic, whether every span is exactly the document
  text it claims, and how often unanswerable questions get
  :class:`~genarch.orchestration.citations.NotFound`.
* :func:`format_table` — the reports as a Markdown table.

Examples:
    >>> questions = load_questions()
    >>> len([q for q in questions if q.answerable]) >= 50
    True
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Annotated

from pydantic import Field

from genarch.errors import InvalidInputError, NotFoundError
from genarch.features.query_adapter import AdapterExample
from genarch.orchestration.answer_gate import GateExample
from genarch.orchestration.citations import Answer, NotFound
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.rag import RAG
from genarch.protocols import PathLike, Retriever
from genarch.schemas import Document, Record
from genarch.validation import describe

__all__ = [
    "DOCS_PYTHON",
    "LabelledQuestion",
    "RAGReport",
    "RetrievalReport",
    "adapter_examples",
    "answer_outcome",
    "evaluate_rag",
    "evaluate_retriever",
    "format_table",
    "gate_examples",
    "load_questions",
    "normalise_space",
    "quote_spans",
    "verify_questions",
]

QUESTIONS_FILE = "python_docs_questions.json"
QUESTION_SETS = {"retrieval": QUESTIONS_FILE, "rag": "python_docs_rag_questions.json"}
FORMAT = "genarch.questions/1"
DOCS_PYTHON = (3, 11)
"""The Python whose documentation (``pydoc_data.topics``) the shipped question sets
quote. Other versions reword some topics, so a few quotes (and the figures measured
on them) hold only for this one."""


def normalise_space(text: str) -> str:
    """``text`` with every run of whitespace made one space, and trimmed.

    Examples:
        >>> normalise_space("a  b\\n   c ")
        'a b c'
    """
    return " ".join(text.split())


class LabelledQuestion(Record):
    """A question with its answer's location.

    Attributes:
        id: a stable identifier (``q001``; ``u001`` for unanswerable ones).
        question: the question as a user would ask it.
        topics: the document ids that answer it (empty: the documents cannot).
        quote: a short passage of the first topic that supports the answer.
    """

    id: Annotated[str, Field(min_length=1)]
    question: Annotated[str, Field(min_length=1)]
    topics: tuple[str, ...] = ()
    quote: str | None = None

    @property
    def answerable(self) -> bool:
        """Whether the documents answer the question."""
        return bool(self.topics)


def load_questions(
    path: PathLike | None = None, *, name: str = "retrieval"
) -> list[LabelledQuestion]:
    """A packaged question set over Python's documentation (or the one in ``path``).

    Args:
        path: a question-set file in the ``genarch.questions/1`` format.
        name: which packaged set when ``path`` is ``None``: ``"retrieval"``
            (the retrieval benchmark's) or ``"rag"`` (the RAG answers' set,
            with answer spans and unanswerable Python questions).

    Raises:
        NotFoundError: ``path`` does not exist.
        InvalidInputError: the file is not a question set, or ``name`` is unknown.

    Examples:
        >>> questions = load_questions(name="rag")
        >>> sum(q.answerable for q in questions), sum(not q.answerable for q in questions)
        (1028, 337)
    """
    if name not in QUESTION_SETS:
        raise InvalidInputError(
            f"load_questions: name must be one of {sorted(QUESTION_SETS)}, got {describe(name)}"
        )
    try:
        if path is None:
            text = (
                resources.files("genarch.orchestration")
                .joinpath("data", QUESTION_SETS[name])
                .read_text(encoding="utf-8")
            )
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except FileNotFoundError:
        raise NotFoundError(f"no question set at {path or QUESTION_SETS[name]}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"the question set is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInputError(f"expected a question set in format {FORMAT!r}")
    return [LabelledQuestion.parse(item) for item in data["questions"]]


def verify_questions(questions: Sequence[LabelledQuestion], documents: Sequence[Document]) -> None:
    """Check that every topic exists and every quote is in each of its topics.

    Raises:
        InvalidInputError: listing every question that fails.
    """
    texts = {document.id: normalise_space(document.text) for document in documents}
    problems = []
    for question in questions:
        if question.answerable and not question.quote:
            problems.append(f"{question.id}: has topics but no quote")
        for topic in question.topics:
            if topic not in texts:
                problems.append(f"{question.id}: unknown topic {topic!r}")
            elif question.quote and normalise_space(question.quote) not in texts[topic]:
                problems.append(f"{question.id}: quote not found in topic {topic!r}")
    if problems:
        raise InvalidInputError(
            "the question set does not fit the documents: " + "; ".join(problems)
        )


def _answerable(questions: object, where: str) -> list[LabelledQuestion]:
    if not isinstance(questions, list | tuple) or not all(
        isinstance(q, LabelledQuestion) for q in questions
    ):
        raise InvalidInputError(
            f"{where} expected a list of LabelledQuestion, got {describe(questions)}"
        )
    return list(questions)


# ------------------------------------------------------------------ retrieval


class RetrievalReport(Record):
    """Retrieval quality over the answerable questions.

    Attributes:
        name: the retriever's label.
        questions: how many questions were asked.
        recall: for each k, the mean share of a question's topics found in the
            top-k chunks.
        hit: for each k, the share of questions with a right topic in the top k.
        evidence: for each k, the share of questions whose supporting quote is
            inside one of the top-k chunks.
        mrr: the mean reciprocal rank of the first chunk of a right topic
            (0 when none is in the top ``max(k)``).
        first_ranks: that rank per question (``None``: not found).
        seconds_per_query: mean retrieval time.
    """

    name: str
    questions: int
    recall: dict[int, float]
    hit: dict[int, float]
    evidence: dict[int, float]
    mrr: float
    first_ranks: tuple[int | None, ...] = ()
    seconds_per_query: float = 0.0


def evaluate_retriever(
    retriever: Retriever,
    questions: Sequence[LabelledQuestion],
    *,
    ks: Sequence[int] = (1, 3, 5, 10),
    name: str | None = None,
) -> RetrievalReport:
    """Recall@k, hit@k, evidence@k and MRR of ``retriever`` on the answerable questions.

    Relevance is by document: a chunk is relevant when its ``document_id`` is
    one of the question's topics.

    Raises:
        InvalidInputError: bad arguments, or no answerable question.
    """
    if not isinstance(retriever, Retriever):
        raise InvalidInputError(
            f"evaluate_retriever expected a Retriever, got {describe(retriever)}"
        )
    asked = [q for q in _answerable(questions, "evaluate_retriever") if q.answerable]
    if not asked:
        raise InvalidInputError("evaluate_retriever needs at least one answerable question")
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise InvalidInputError(f"evaluate_retriever: ks must be positive ints, got {ks!r}")
    depth = max(ks)
    recall = dict.fromkeys(ks, 0.0)
    hit = dict.fromkeys(ks, 0.0)
    evidence = dict.fromkeys(ks, 0.0)
    reciprocal, ranks, elapsed = 0.0, [], 0.0
    for question in asked:
        started = time.perf_counter()
        results = retriever.retrieve(question.question, depth)
        elapsed += time.perf_counter() - started
        topics = set(question.topics)
        quote = normalise_space(question.quote or "")
        documents = [r.chunk.document_id for r in results]
        first = next((i + 1 for i, d in enumerate(documents) if d in topics), None)
        ranks.append(first)
        reciprocal += 0.0 if first is None else 1.0 / first
        for k in ks:
            found = topics & set(documents[:k])
            recall[k] += len(found) / len(topics)
            hit[k] += 1.0 if found else 0.0
            evidence[k] += any(
                r.chunk.document_id in topics and quote in normalise_space(r.chunk.text)
                for r in results[:k]
            )
    count = len(asked)
    return RetrievalReport(
        name=name or type(retriever).__name__,
        questions=count,
        recall={k: v / count for k, v in recall.items()},
        hit={k: v / count for k, v in hit.items()},
        evidence={k: v / count for k, v in evidence.items()},
        mrr=reciprocal / count,
        first_ranks=tuple(ranks),
        seconds_per_query=elapsed / count,
    )


# ------------------------------------------------------------------ RAG


class RAGReport(Record):
    """What a RAG pipeline answers on the labelled questions.

    Attributes:
        name: the pipeline's label.
        answerable, unanswerable: how many questions of each kind were asked.
        answered: share of answerable questions that got an :class:`Answer`.
        quote_cited: share of answerable questions with a citation whose span
            contains the supporting quote (the strict measure).
        topic_cited: share of answerable questions citing a right topic.
        spans_exact: share of all citations whose ``quote`` is exactly
            ``document.text[start:end]`` (should be 1).
        fully_cited: share of answers whose every statement has a citation.
        declined_unanswerable: share of unanswerable questions that got
            :class:`NotFound` (higher is better).
        not_found_reasons: how often each :class:`NotFound` reason occurred.
        answer_accuracy: share of answerable questions answered right: a
            citation of a right topic whose span overlaps the supporting quote
            in that topic's text.
        decline_precision: of the :class:`NotFound` results, the share given
            to unanswerable questions (1 when nothing was declined).
        decline_recall: of the unanswerable questions, the share declined
            (the same as ``declined_unanswerable``).
        outcomes: per question id, ``right``, ``wrong_topic``, ``no_overlap``
            or ``declined`` (answerable), ``declined`` or ``answered``
            (unanswerable).
    """

    name: str
    answerable: int
    unanswerable: int
    answered: float
    quote_cited: float
    topic_cited: float
    spans_exact: float
    fully_cited: float
    declined_unanswerable: float
    not_found_reasons: dict[str, int] = Field(default_factory=dict)
    answer_accuracy: float = 0.0
    decline_precision: float = 1.0
    decline_recall: float = 0.0
    outcomes: dict[str, str] = Field(default_factory=dict)


def quote_spans(quote: str, text: str) -> list[tuple[int, int]]:
    """Every ``(start, end)`` of ``quote`` in ``text``, whitespace runs matching any whitespace.

    Examples:
        >>> quote_spans("a  b", "x a\\nb a b")
        [(2, 5), (6, 9)]
    """
    words = quote.split()
    if not words:
        return []
    pattern = re.compile(r"\s+".join(map(re.escape, words)))
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def answer_outcome(
    result: Answer | NotFound, question: LabelledQuestion, texts: Mapping[str, str]
) -> str:
    """How ``result`` fares on an answerable ``question`` (see :attr:`RAGReport.outcomes`).

    ``right`` needs a citation of one of the question's topics whose span
    overlaps an occurrence of the supporting quote in that topic's text.
    """
    if isinstance(result, NotFound):
        return "declined"
    relevant = [c for c in result.citations if c.document_id in question.topics]
    if not relevant:
        return "wrong_topic"
    for citation in relevant:
        spans = quote_spans(question.quote or "", texts.get(citation.document_id, ""))
        if any(start < citation.end and citation.start < end for start, end in spans):
            return "right"
    return "no_overlap"


def _extractive(rag: object, where: str) -> ExtractiveGenerator:
    """``rag``'s ExtractiveGenerator, or an InvalidInputError naming ``where``."""
    if not isinstance(rag, RAG) or not isinstance(rag.generator, ExtractiveGenerator):
        raise InvalidInputError(
            f"{where} expected a RAG with an ExtractiveGenerator, got {describe(rag)}"
        )
    return rag.generator


def adapter_examples(
    rag: RAG, questions: Sequence[LabelledQuestion], documents: Sequence[Document]
) -> list[AdapterExample]:
    """What :func:`~genarch.features.fit_query_adapter` learns from: for each answerable
    question, the candidate sentences of the chunks ``rag`` retrieves (as its
    :class:`~genarch.orchestration.extractive.ExtractiveGenerator` reads them) and
    which of them overlap the question's quote in one of its topics.

    A question whose quote is in none of the candidates teaches nothing and is
    left out.

    Raises:
        InvalidInputError: ``rag``'s generator is not an ExtractiveGenerator, or
            bad questions.
    """
    generator = _extractive(rag, "adapter_examples")
    texts = {d.id: d.text for d in documents}
    examples = []
    for question in _answerable(questions, "adapter_examples"):
        if not question.answerable:
            continue
        chunks = [source.chunk for source in rag.retrieve(question.question)]
        candidates = generator.candidates(
            [c.text for c in chunks], document_ids=[c.document_id for c in chunks]
        )
        answers = []
        for number, (index, start, end, _) in enumerate(candidates):
            chunk = chunks[index]
            if chunk.document_id not in question.topics:
                continue
            spans = quote_spans(question.quote or "", texts.get(chunk.document_id, ""))
            if any(a < chunk.start + end and chunk.start + start < b for a, b in spans):
                answers.append(number)
        if answers:
            examples.append(
                AdapterExample(
                    question=" ".join(question.question.split()),
                    candidates=tuple(text for *_, text in candidates),
                    answers=tuple(answers),
                )
            )
    return examples


def gate_examples(rag: RAG, questions: Sequence[LabelledQuestion]) -> list[GateExample]:
    """What :func:`~genarch.orchestration.answer_gate.fit_answer_gate` learns from:
    each question with the best score ``rag``'s
    :class:`~genarch.orchestration.extractive.ExtractiveGenerator` gives a
    sentence of the chunks it retrieves
    (:meth:`~genarch.orchestration.extractive.ExtractiveGenerator.confidence`),
    and whether it is answerable.

    Raises:
        InvalidInputError: ``rag``'s generator is not an ExtractiveGenerator, or
            bad questions.
    """
    generator = _extractive(rag, "gate_examples")
    examples = []
    for question in _answerable(questions, "gate_examples"):
        chunks = [source.chunk for source in rag.retrieve(question.question)]
        confidence = generator.confidence(
            question.question,
            [c.text for c in chunks],
            document_ids=[c.document_id for c in chunks],
        )
        examples.append(
            GateExample(
                question=question.question, confidence=confidence, answerable=question.answerable
            )
        )
    return examples


def evaluate_rag(
    rag: RAG,
    questions: Sequence[LabelledQuestion],
    documents: Sequence[Document],
    *,
    name: str | None = None,
) -> RAGReport:
    """Citation correctness and not-found behaviour of ``rag`` on the questions.

    Raises:
        InvalidInputError: bad arguments.
    """
    if not isinstance(rag, RAG):
        raise InvalidInputError(f"evaluate_rag expected a RAG, got {describe(rag)}")
    asked = _answerable(questions, "evaluate_rag")
    texts: Mapping[str, str] = {d.id: d.text for d in documents}
    answerable = [q for q in asked if q.answerable]
    unanswerable = [q for q in asked if not q.answerable]
    answered = quote_cited = topic_cited = fully = declined = 0
    exact = total_citations = answers = 0
    reasons: dict[str, int] = {}
    outcomes: dict[str, str] = {}
    for question in asked:
        result = rag.run(question.question)
        if question.answerable:
            outcomes[question.id] = answer_outcome(result, question, texts)
        else:
            outcomes[question.id] = "declined" if isinstance(result, NotFound) else "answered"
        if isinstance(result, NotFound):
            reasons[result.reason] = reasons.get(result.reason, 0) + 1
            declined += not question.answerable
            continue
        assert isinstance(result, Answer)
        answers += 1
        citations = result.citations
        for citation in citations:
            total_citations += 1
            document = texts.get(citation.document_id)
            exact += (
                document is not None and document[citation.start : citation.end] == citation.quote
            )
        fully += result.fully_cited
        if not question.answerable:
            continue
        answered += 1
        quote = normalise_space(question.quote or "")
        relevant = [c for c in citations if c.document_id in question.topics]
        topic_cited += bool(relevant)
        quote_cited += any(quote in normalise_space(c.quote) for c in relevant)
    return RAGReport(
        name=name or repr(rag),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        answered=answered / max(1, len(answerable)),
        quote_cited=quote_cited / max(1, len(answerable)),
        topic_cited=topic_cited / max(1, len(answerable)),
        spans_exact=exact / total_citations if total_citations else 1.0,
        fully_cited=fully / answers if answers else 1.0,
        declined_unanswerable=declined / max(1, len(unanswerable)),
        not_found_reasons=reasons,
        answer_accuracy=sum(outcomes[q.id] == "right" for q in answerable)
        / max(1, len(answerable)),
        decline_precision=declined / sum(reasons.values()) if reasons else 1.0,
        decline_recall=declined / max(1, len(unanswerable)),
        outcomes=outcomes,
    )


# ------------------------------------------------------------------ tables


def format_table(reports: Sequence[RetrievalReport], *, ks: Sequence[int] | None = None) -> str:
    """Retrieval reports as a Markdown table (recall@k, evidence@k, MRR).

    Examples:
        >>> report = RetrievalReport(name="bm25", questions=2, recall={1: 0.5, 5: 1.0},
        ...     hit={1: 0.5, 5: 1.0}, evidence={1: 0.5, 5: 0.5}, mrr=0.75)
        >>> print(format_table([report]))
        | retriever | recall@1 | recall@5 | evidence@5 | MRR | ms/query |
        |---|---|---|---|---|---|
        | bm25 | 0.500 | 1.000 | 0.500 | 0.750 | 0.00 |
    """
    if not reports:
        return ""
    shown = sorted(ks or reports[0].recall)
    deepest = shown[-1]
    header = [
        "retriever",
        *(f"recall@{k}" for k in shown),
        f"evidence@{deepest}",
        "MRR",
        "ms/query",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for report in reports:
        cells = [
            report.name,
            *(f"{report.recall[k]:.3f}" for k in shown),
            f"{report.evidence[deepest]:.3f}",
            f"{report.mrr:.3f}",
            f"{report.seconds_per_query * 1000:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
