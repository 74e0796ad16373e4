"""The labelled question set and the retrieval / RAG evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from genarch.data import Chunker, python_docs
from genarch.errors import InvalidInputError, NotFoundError
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.rag import RAG
from genarch.orchestration.rag_evaluation import (
    LabelledQuestion,
    RetrievalReport,
    evaluate_rag,
    evaluate_retriever,
    format_table,
    load_questions,
    normalise_space,
    verify_questions,
)
from genarch.schemas import Chunk, Document, ScoredChunk
from orchestration.conftest import quotes_this_python


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return python_docs()


@pytest.fixture(scope="module")
def questions() -> list[LabelledQuestion]:
    return load_questions()


# ------------------------------------------------------------------ the question set


def test_the_set_has_at_least_fifty_answerable_questions(questions: list[LabelledQuestion]) -> None:
    answerable = [q for q in questions if q.answerable]
    assert len(answerable) >= 50
    assert any(not q.answerable for q in questions), "unanswerable questions test NotFound"
    assert len({q.id for q in questions}) == len(questions)
    assert len({q.question for q in questions}) == len(questions)


@quotes_this_python
def test_every_quote_is_in_each_of_its_topics(
    questions: list[LabelledQuestion], documents: list[Document]
) -> None:
    verify_questions(questions, documents)  # raises, naming every failure
    texts = {d.id: normalise_space(d.text) for d in documents}
    for question in questions:
        for topic in question.topics:
            assert normalise_space(question.quote or "") in texts[topic], question.id


def test_questions_are_questions_not_copies_of_their_quotes(
    questions: list[LabelledQuestion],
) -> None:
    for question in questions:
        assert question.question.endswith("?"), question.id
        if question.quote:
            assert normalise_space(question.quote) not in question.question, question.id


def test_verify_names_wrong_quotes_and_unknown_topics(documents: list[Document]) -> None:
    bad = [
        LabelledQuestion(id="x1", question="?", topics=("pass",), quote="not in the pass topic"),
        LabelledQuestion(id="x2", question="?", topics=("no-such-topic",), quote="a"),
    ]
    with pytest.raises(InvalidInputError, match="x1: quote not found.*x2: unknown topic"):
        verify_questions(bad, documents)


def test_loading_a_missing_or_foreign_file_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_questions(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(InvalidInputError, match="format"):
        load_questions(tmp_path / "other.json")


# ------------------------------------------------------------------ retrieval metrics

TINY = [
    Document(id="a", text="alpha facts here."),
    Document(id="b", text="beta facts here."),
    Document(id="c", text="gamma facts here."),
]
TINY_CHUNKS = [
    Chunk(id=f"{d.id}#0", document_id=d.id, text=d.text, start=0, end=len(d.text)) for d in TINY
]
TINY_QUESTIONS = [
    LabelledQuestion(id="q1", question="alpha?", topics=("a",), quote="alpha facts"),
    LabelledQuestion(id="q2", question="beta?", topics=("b",), quote="beta facts"),
    LabelledQuestion(id="u1", question="zeta?"),
]


class Ranked:
    """Returns the chunks in a fixed order, whatever the query."""

    def __init__(self, order: list[int]) -> None:
        self.order = order

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        return [
            ScoredChunk(chunk=TINY_CHUNKS[i], score=-float(r)) for r, i in enumerate(self.order[:k])
        ]


class Oracle:
    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        index = {"alpha?": 0, "beta?": 1}[query]
        return [ScoredChunk(chunk=TINY_CHUNKS[index], score=1.0)]


def test_a_perfect_retriever_scores_one() -> None:
    report = evaluate_retriever(Oracle(), TINY_QUESTIONS, ks=(1, 3))
    assert report.questions == 2  # unanswerable questions are not asked
    assert report.recall == {1: 1.0, 3: 1.0}
    assert report.mrr == 1.0
    assert report.evidence[1] == 1.0


def test_ranks_give_reciprocal_rank_and_recall_at_k() -> None:
    report = evaluate_retriever(Ranked([2, 0, 1]), TINY_QUESTIONS, ks=(1, 2, 3))
    assert report.first_ranks == (2, 3)
    assert report.mrr == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert report.recall == {1: 0.0, 2: 0.5, 3: 1.0}
    assert report.hit == report.recall


def test_bad_evaluation_arguments_raise() -> None:
    with pytest.raises(InvalidInputError):
        evaluate_retriever(object(), TINY_QUESTIONS)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        evaluate_retriever(Oracle(), TINY_QUESTIONS, ks=(0,))
    with pytest.raises(InvalidInputError):
        evaluate_retriever(Oracle(), TINY_QUESTIONS[2:])


def test_the_table_has_one_row_per_retriever() -> None:
    report = evaluate_retriever(Oracle(), TINY_QUESTIONS, ks=(1, 3), name="oracle")
    table = format_table([report, RetrievalReport.parse({**report.model_dump(), "name": "copy"})])
    lines = table.splitlines()
    assert lines[0].startswith("| retriever | recall@1 | recall@3 | evidence@3 | MRR")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| oracle", "| copy"]


# ------------------------------------------------------------------ on the Python docs (a subset)


@pytest.fixture(scope="module")
def subset(
    documents: list[Document], questions: list[LabelledQuestion]
) -> tuple[list[Document], list[LabelledQuestion]]:
    """Short topics only (fast), with the questions they answer and the unanswerable ones."""
    small = [d for d in documents if len(d.text) < 3000]
    ids = {d.id for d in small}
    asked = [q for q in questions if not q.answerable or set(q.topics) <= ids]
    return small, asked


def test_bm25_finds_the_right_topic_for_most_questions(
    subset: tuple[list[Document], list[LabelledQuestion]],
) -> None:
    bm25 = pytest.importorskip("genarch.orchestration.bm25")
    documents, asked = subset
    assert sum(q.answerable for q in asked) >= 20
    chunks = list(Chunker(max_tokens=128, overlap_tokens=16).process(documents))
    report = evaluate_retriever(bm25.BM25Retriever(stopwords=()).fit(chunks), asked, ks=(1, 5))
    assert report.hit[5] >= 0.8
    assert report.mrr >= 0.6


def test_rag_citations_are_exact_and_unanswerable_questions_are_declined(
    subset: tuple[list[Document], list[LabelledQuestion]],
) -> None:
    bm25 = pytest.importorskip("genarch.orchestration.bm25")
    documents, asked = subset
    chunks = list(Chunker(max_tokens=128, overlap_tokens=16).process(documents))
    rag = RAG(bm25.BM25Retriever(stopwords=()).fit(chunks), ExtractiveGenerator())
    report = evaluate_rag(rag, asked, documents, name="bm25+extractive")
    assert report.spans_exact == 1.0
    assert report.fully_cited == 1.0
    assert report.declined_unanswerable == 1.0
    assert report.answered >= 0.8
    assert report.topic_cited >= 0.7
    assert report.quote_cited >= 0.35


def test_the_old_module_name_still_imports_with_a_warning() -> None:
    import genarch.orchestration.evaluation as old

    with pytest.warns(DeprecationWarning, match="genarch.orchestration.rag_evaluation"):
        assert old.load_questions is load_questions
