"""The RAG answers' question set, its scoring, and the quickstart assistant's figures on it."""

from __future__ import annotations

import pytest

from genarch.data import python_docs
from genarch.errors import InvalidInputError
from genarch.orchestration.citations import Answer, Citation, NotFound, Statement
from genarch.orchestration.quickstart import quickstart_rag
from genarch.orchestration.rag_evaluation import (
    LabelledQuestion,
    answer_outcome,
    evaluate_rag,
    load_questions,
    quote_spans,
    verify_questions,
)
from genarch.schemas import Document
from orchestration.conftest import quotes_this_python


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return python_docs()


@pytest.fixture(scope="module")
def questions() -> list[LabelledQuestion]:
    return load_questions(name="rag")


def test_the_rag_set_has_60_answerable_and_20_unanswerable_questions(questions):
    assert sum(q.answerable for q in questions) >= 60
    assert sum(not q.answerable for q in questions) >= 20
    assert len({q.id for q in questions}) == len(questions)


@quotes_this_python
def test_every_answer_span_occurs_in_its_topics(questions, documents):
    verify_questions(questions, documents)  # raises, naming each question that fails


def test_the_rag_set_is_not_the_retrieval_set(questions):
    asked = {q.question for q in load_questions()}
    assert not asked & {q.question for q in questions}


def test_an_unknown_question_set_name_is_refused():
    with pytest.raises(InvalidInputError, match="name must be one of"):
        load_questions(name="nope")


def test_quote_spans_match_across_line_breaks():
    assert quote_spans("a b", "a\n b, a b") == [(0, 4), (6, 9)]
    assert quote_spans("", "text") == []


def _answer(document_id: str, start: int, end: int, text: str) -> Answer:
    citation = Citation(
        source=1, chunk_id=f"{document_id}#0", document_id=document_id,
        start=start, end=end, quote=text[start:end],
    )  # fmt: skip
    statement = Statement(text=citation.quote, citations=(citation,))
    return Answer(question="q?", text=citation.quote, statements=(statement,), sources=())


def test_an_answer_is_right_only_with_the_topic_and_an_overlapping_span():
    text = "First sentence here. The answer is forty-two. Last one."
    question = LabelledQuestion(id="a1", question="q?", topics=("doc",), quote="is forty-two")
    texts = {"doc": text, "other": text}
    assert answer_outcome(_answer("doc", 21, 45, text), question, texts) == "right"
    assert answer_outcome(_answer("doc", 0, 20, text), question, texts) == "no_overlap"
    assert answer_outcome(_answer("other", 21, 45, text), question, texts) == "wrong_topic"
    declined = NotFound(question="q?", reason="low_coverage", detail="")
    assert answer_outcome(declined, question, texts) == "declined"


@quotes_this_python
def test_the_quickstart_assistant_answers_the_held_out_half(questions, documents):
    # Figures measured with `python benchmarks/eval_rag.py` on the held-out half
    # (even ids); the asserted floors leave a margin of about one question.
    held_out = [q for q in questions if int(q.id[1:]) % 2 == 0]
    report = evaluate_rag(quickstart_rag(documents), held_out, documents)
    assert report.spans_exact == 1.0
    assert report.answer_accuracy >= ACCURACY_FLOOR
    assert report.decline_recall >= DECLINE_RECALL_FLOOR
    assert report.decline_precision >= DECLINE_PRECISION_FLOOR


ACCURACY_FLOOR = 0.55
DECLINE_RECALL_FLOOR = 0.6
DECLINE_PRECISION_FLOOR = 0.8
