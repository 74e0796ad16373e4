"""Groundedness, citation precision and answer relevance: definitions, bad input, the kit."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from genarch.errors import ConfigError, InvalidInputError
from genarch.evaluation import AnswerRelevance, Groundedness
from genarch.evaluation.rag import content_tokens, support
from genarch.features import TfidfVectorizer
from genarch.orchestration.citations import Answer, NotFound, Source, Statement, parse_answer
from genarch.schemas import Chunk, TextResult
from genarch.testing import check_evaluator

TUPLES = Chunk(
    id="t#0", document_id="t", text="Tuples are immutable sequences of objects.", start=0, end=42
)
LISTS = Chunk(
    id="l#0", document_id="l", text="Lists are mutable and can be sorted in place.", start=0, end=45
)
SOURCES = (Source(number=1, chunk=TUPLES, score=1.0), Source(number=2, chunk=LISTS, score=0.5))


def _answer(text: str) -> Answer:
    return Answer(
        question="q", text=text, statements=tuple(parse_answer(text, SOURCES)), sources=SOURCES
    )


def test_content_tokens_and_support_by_hand() -> None:
    assert content_tokens("The tuple is an immutable object.") == {"tuple", "immutable", "object"}
    # claim {lists, sorted, place}: "lists" and "place" in the chunk, "sorted" not -> 2/3
    assert support("Lists are sorted in place.", ["Lists stay in place."]) == pytest.approx(2 / 3)
    assert support("It is.", []) == 1.0  # nothing to support


def test_groundedness_and_citation_precision_by_hand() -> None:
    # statement 1 cites [1] (supported) and [2] (not: precision pair fails);
    # statement 2 cites [2] and is supported; statement 3 cites nothing.
    answer = _answer(
        "Tuples are immutable sequences [1][2]. Lists can be sorted in place [2]. Sets are fast."
    )
    evaluation = Groundedness().evaluate("q", answer)
    assert evaluation.scores == {
        "groundedness": pytest.approx(2 / 3),
        "citation_precision": pytest.approx(2 / 3),
    }
    assert evaluation.details["unsupported_statements"] == "2"


def test_the_threshold_decides_support() -> None:
    # "Tuples are immutable lists" vs chunk 1: {tuples, immutable, lists} -> 2/3 found
    answer = _answer("Tuples are immutable lists [1].")
    assert Groundedness(threshold=0.75).evaluate("q", answer).scores["groundedness"] == 0.0
    assert Groundedness(threshold=0.6).evaluate("q", answer).scores["groundedness"] == 1.0


def test_a_citation_to_an_unknown_source_uses_its_quote() -> None:
    statement = Statement(
        text="Dicts map keys.",
        citations=(
            parse_answer("Tuples [1].", SOURCES)[0]
            .citations[0]
            .model_copy(update={"source": 9, "quote": "Dicts map keys to values."}),
        ),
    )
    answer = Answer(
        question="q", text="Dicts map keys [9].", statements=(statement,), sources=SOURCES
    )
    assert Groundedness().evaluate("q", answer).scores["groundedness"] == 1.0


def test_not_found_and_empty_answers_claim_nothing() -> None:
    not_found = NotFound(question="q", reason="no_results", detail="nothing")
    assert Groundedness().evaluate("q", not_found).scores == {
        "groundedness": 1.0,
        "citation_precision": 1.0,
    }
    empty = Answer(question="q", text="", statements=(), sources=SOURCES)
    assert Groundedness().evaluate("q", empty).scores["groundedness"] == 1.0


def test_uncited_statements_score_zero() -> None:
    assert Groundedness().evaluate("q", _answer("Tuples are immutable.")).scores == {
        "groundedness": 0.0,
        "citation_precision": 0.0,
    }


def test_groundedness_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="result as an Answer or NotFound"):
        Groundedness().evaluate("q", "just text")
    with pytest.raises(ConfigError, match="threshold"):
        Groundedness(threshold=0)


def test_groundedness_kit_passes() -> None:
    examples = [
        ("q", _answer("Tuples are immutable sequences [1]. Lists can be sorted in place [2].")),
        ("q", _answer("Lists are immutable [1].")),
        ("q", NotFound(question="q", reason="low_score", detail="low")),
    ]
    check_evaluator(Groundedness(), examples, invalid_examples=[("q", "text"), ("q", None)])


# ------------------------------------------------------------------ relevance


class Letters:
    """Features: counts of 'a' and 'b' (an extractor whose cosines are easy to compute)."""

    dim = 2

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        return torch.tensor(
            [[t.count("a"), t.count("b")] for t in items], dtype=torch.float32
        ).reshape(-1, 2)


def test_answer_relevance_is_the_cosine_by_hand() -> None:
    relevance = AnswerRelevance(Letters())
    assert relevance.evaluate("aa", "aaaa").scores["answer_relevance"] == pytest.approx(1.0)
    assert relevance.evaluate("a", "b").scores["answer_relevance"] == 0.0
    # (1, 1) vs (1, 0): cos = 1 / sqrt(2)
    assert relevance.evaluate("ab", TextResult(text="a")).scores[
        "answer_relevance"
    ] == pytest.approx(2**-0.5)
    assert relevance.evaluate("ab", "xyz").scores["answer_relevance"] == 0.0  # zero vector


def test_answer_relevance_of_rag_results() -> None:
    relevance = AnswerRelevance(Letters())
    answer = Answer(
        question="q", text="a [1]", statements=(Statement(text="a b"),), sources=SOURCES
    )
    assert relevance.evaluate("ab", answer).scores["answer_relevance"] == pytest.approx(1.0)
    not_found = NotFound(question="q", reason="no_results", detail="none")
    assert relevance.evaluate("ab", not_found).scores["answer_relevance"] == 0.0


def test_answer_relevance_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="extractor"):
        AnswerRelevance(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="request"):
        AnswerRelevance(Letters()).evaluate(3, "a")
    with pytest.raises(InvalidInputError, match="result"):
        AnswerRelevance(Letters()).evaluate("a", 3)


def test_answer_relevance_kit_passes_with_a_real_extractor() -> None:
    corpus = [
        "how do I sort a list",
        "lists sort in place",
        "tuples are immutable",
        "sets hold items",
    ]
    relevance = AnswerRelevance(TfidfVectorizer().fit(corpus))
    examples = [
        ("how do I sort a list", "lists sort in place"),
        ("what is a tuple", "tuples are immutable"),
    ]
    check_evaluator(relevance, examples, invalid_examples=[(None, "x")])
    scores = [relevance.evaluate(q, a).scores["answer_relevance"] for q, a in examples]
    off_topic = relevance.evaluate("how do I sort a list", "sets hold items").scores[
        "answer_relevance"
    ]
    assert scores[0] > off_topic
