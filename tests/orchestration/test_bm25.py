"""BM25Retriever: Okapi BM25 (Lucene variant) that ranks exactly as bm25s does."""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch.data import Chunker, python_docs
from genarch.errors import ConfigError, InvalidInputError
from genarch.orchestration.bm25 import ENGLISH_STOPWORDS, BM25Config, BM25Retriever
from genarch.schemas import Chunk
from genarch.testing import parametrize_with_checks, retriever_checks


def chunk(id_: str, text: str, document_id: str = "doc") -> Chunk:
    return Chunk(id=id_, document_id=document_id, text=text, start=0, end=len(text))


@cache
def docs_chunks() -> tuple[Chunk, ...]:
    return tuple(Chunker(max_tokens=128, overlap_tokens=16).process(python_docs()))


@cache
def docs_retriever() -> BM25Retriever:
    return BM25Retriever().fit(docs_chunks())


QUESTIONS = [
    "How do I define a function with default argument values?",
    "what does the with statement do",
    "exception handling try except finally",
    "list comprehension syntax",
    "global and nonlocal variables in nested scopes",
    "How are floating point numbers compared?",
    "yield expression in a generator",
    "operator precedence table",
]


@parametrize_with_checks(retriever_checks(docs_retriever(), QUESTIONS[:3]))
def test_bm25_passes_the_conformance_kit(check) -> None:  # type: ignore[no-untyped-def]
    check()


def test_scores_follow_the_lucene_formula_by_hand() -> None:
    texts = ["apple apple banana", "apple cherry", "banana banana banana cherry date"]
    retriever = BM25Retriever(k1=1.2, b=0.5, stopwords=()).fit(
        [chunk(str(i), t) for i, t in enumerate(texts)]
    )
    lengths = [3, 2, 5]
    average = sum(lengths) / 3

    def expected(doc: int, query: list[str]) -> float:
        total = 0.0
        words = texts[doc].split()
        for term in query:
            df = sum(term in t.split() for t in texts)
            tf = words.count(term)
            idf = math.log(1 + (3 - df + 0.5) / (df + 0.5))
            total += idf * tf / (tf + 1.2 * (1 - 0.5 + 0.5 * lengths[doc] / average))
        return total

    scores = retriever.scores("apple banana banana")  # repeated query tokens count twice
    for doc in range(3):
        assert scores[doc].item() == pytest.approx(
            expected(doc, ["apple", "banana", "banana"]), rel=1e-6
        )


def test_only_chunks_sharing_a_token_are_returned() -> None:
    retriever = BM25Retriever().fit([chunk("a", "alpha beta"), chunk("b", "gamma delta")])
    assert [r.chunk.id for r in retriever.retrieve("beta", k=5)] == ["a"]
    assert retriever.retrieve("unknown words only", k=5) == []
    assert retriever.retrieve("the of and", k=5) == []  # stop words only


def test_equal_scores_come_in_indexing_order() -> None:
    retriever = BM25Retriever().fit([chunk(i, "same words here") for i in "zyxwv"])
    assert [r.chunk.id for r in retriever.retrieve("words", k=3)] == ["z", "y", "x"]


def test_tokenisation_is_documented_behaviour() -> None:
    retriever = BM25Retriever()
    assert retriever.tokenize("The Zen of Python: a_b x 42 e.g. naïve") == [
        "zen", "python", "a_b", "42", "naïve",
    ]  # fmt: skip
    assert BM25Retriever(lowercase=False, stopwords=()).tokenize("The X Of") == ["The", "Of"]
    assert "the" in ENGLISH_STOPWORDS
    assert len(ENGLISH_STOPWORDS) == 33


def test_add_equals_fitting_everything_at_once() -> None:
    chunks = list(docs_chunks()[:200])
    incremental = BM25Retriever().fit(chunks[:120]).add(chunks[120:])
    at_once = BM25Retriever().fit(chunks)
    for question in QUESTIONS:
        assert torch.equal(incremental.scores(question), at_once.scores(question))


@given(st.lists(st.text(alphabet="ab cd", max_size=20), min_size=1, max_size=12), st.text("abcd "))
def test_scores_are_non_negative_and_zero_without_shared_tokens(
    texts: list[str], query: str
) -> None:
    retriever = BM25Retriever(stopwords=()).fit([chunk(str(i), t) for i, t in enumerate(texts)])
    scores = retriever.scores(query)
    query_tokens = set(retriever.tokenize(query))
    for i, text in enumerate(texts):
        shares = bool(query_tokens & set(retriever.tokenize(text)))
        assert (scores[i].item() > 0) == shares
    results = retriever.retrieve(query, k=len(texts))
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_bad_input_and_config_are_refused() -> None:
    retriever = BM25Retriever().fit([chunk("a", "alpha")])
    with pytest.raises(InvalidInputError):
        retriever.retrieve(["alpha"], 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        retriever.retrieve("alpha", 0)
    with pytest.raises(InvalidInputError, match="twice"):
        BM25Retriever().fit([chunk("a", "x"), chunk("a", "y")])
    with pytest.raises(InvalidInputError):
        BM25Retriever().fit(["not a chunk"])  # type: ignore[list-item]
    with pytest.raises(ConfigError):
        BM25Retriever(b=1.5)
    with pytest.raises(ConfigError, match="regular expression"):
        BM25Retriever(token_pattern="(")
    assert BM25Retriever.from_config({"k1": 0.9}).config == BM25Config(k1=0.9)


def test_an_empty_index_returns_nothing() -> None:
    assert BM25Retriever().retrieve("anything", 3) == []
    assert BM25Retriever().fit([]).retrieve("anything", 3) == []


def test_rankings_are_identical_to_bm25s() -> None:
    bm25s = pytest.importorskip("bm25s")
    chunks = docs_chunks()
    ours = docs_retriever()
    theirs = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    theirs.index(
        bm25s.tokenize([c.text for c in chunks], stopwords="en", show_progress=False),
        show_progress=False,
    )
    for question in QUESTIONS:
        tokens = bm25s.tokenize([question], stopwords="en", show_progress=False, return_ids=False)
        expected_scores = torch.from_numpy(theirs.get_scores(tokens[0]))
        torch.testing.assert_close(ours.scores(question), expected_scores, rtol=1e-6, atol=1e-6)
        indices, scores = theirs.retrieve(tokens, k=10, show_progress=False)
        got = ours.retrieve(question, k=10)
        assert [r.score for r in got] == pytest.approx(scores[0].tolist(), rel=1e-6)
        # Same top 10. bm25s leaves the order of equal scores unspecified (ours is by
        # position), so chunks tied at the 10th score may differ: compare the chunks
        # strictly above it as sets, and check that ours at the cut really score it.
        cutoff = float(scores[0][-1])
        theirs_above = {
            chunks[index].id
            for index, score in zip(indices[0].tolist(), scores[0].tolist(), strict=True)
            if score > cutoff + 1e-5
        }
        assert {r.chunk.id for r in got if r.score > cutoff + 1e-5} == theirs_above
        position = {chunk.id: i for i, chunk in enumerate(chunks)}
        for result in got:
            assert float(expected_scores[position[result.chunk.id]]) == pytest.approx(
                result.score, rel=1e-6
            )


@given(
    st.lists(st.text(alphabet="ab cd ef", max_size=30), min_size=1, max_size=30),
    st.lists(st.sampled_from(["ab", "cd", "ef", "abab", "zz"]), max_size=6),
    st.integers(1, 8),
)
def test_retrieve_equals_a_full_stable_sort_of_the_scores(
    texts: list[str], query_words: list[str], k: int
) -> None:
    retriever = BM25Retriever(stopwords=()).fit([chunk(str(i), t) for i, t in enumerate(texts)])
    query = " ".join(query_words)
    values, order = retriever.scores(query).sort(descending=True, stable=True)
    expected = [str(i) for i, v in zip(order.tolist(), values.tolist(), strict=True) if v > 0][:k]
    assert [r.chunk.id for r in retriever.retrieve(query, k)] == expected
