"""Dense, hybrid (RRF), MMR and re-ranking retrievers over chunks."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from functools import cache

import pytest
import torch

from genarch.data import Chunker, python_docs
from genarch.errors import ConfigError, InvalidInputError, NotFoundError
from genarch.orchestration.bm25 import BM25Retriever
from genarch.orchestration.reranking import (
    EmbeddingReranker,
    FunctionReranker,
    MMRRetriever,
    Reranker,
    RerankingRetriever,
)
from genarch.orchestration.retrievers import DenseRetriever, HybridRetriever
from genarch.orchestration.vectorstore import ExactVectorStore
from genarch.schemas import Chunk, ScoredChunk
from genarch.testing import check_feature_extractor, parametrize_with_checks, retriever_checks


class HashedWords:
    """A tiny FeatureExtractor[str]: hashed bag of lower-cased words (deterministic)."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(items), self.dim)
        for row, text in enumerate(items):
            if not isinstance(text, str):
                raise InvalidInputError(
                    f"HashedWords expected str items, got {type(text).__name__}"
                )
            for word in re.findall(r"\w\w+", text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return out


def chunk(id_: str, text: str, document_id: str = "doc", **metadata: str) -> Chunk:
    return Chunk(
        id=id_, document_id=document_id, text=text, start=0, end=len(text), metadata=metadata
    )


@cache
def docs_chunks() -> tuple[Chunk, ...]:
    documents = [
        d
        for d in python_docs()
        if d.id
        in {"assert", "break", "continue", "for", "if", "pass", "while", "with", "try", "return"}
    ]
    return tuple(Chunker(max_tokens=96, overlap_tokens=8).process(documents))


def dense() -> DenseRetriever:
    return DenseRetriever(HashedWords(), ExactVectorStore(dim=256)).add(docs_chunks())


QUERIES = ["What does the pass statement do?", "leave a loop early", "context manager enter exit"]


def test_the_test_extractor_is_a_feature_extractor() -> None:
    check_feature_extractor(HashedWords(), ["alpha beta", "gamma", ""])


@parametrize_with_checks(
    [
        retriever_checks(dense(), QUERIES, label="dense"),
        retriever_checks(
            HybridRetriever([dense(), BM25Retriever().fit(docs_chunks())]), QUERIES, label="hybrid"
        ),
        retriever_checks(MMRRetriever(dense(), lambda_=0.5), QUERIES, label="mmr-dense"),
        retriever_checks(
            MMRRetriever(BM25Retriever().fit(docs_chunks()), HashedWords()),
            QUERIES,
            label="mmr-bm25",
        ),
        retriever_checks(
            RerankingRetriever(
                BM25Retriever().fit(docs_chunks()), EmbeddingReranker(HashedWords())
            ),
            QUERIES,
            label="reranking",
        ),
    ]
)
def test_retrievers_pass_the_conformance_kit(check) -> None:  # type: ignore[no-untyped-def]
    check()


# ----------------------------------------------------------------------- dense


def test_dense_retriever_finds_the_chunk_that_answers() -> None:
    top = dense().retrieve("leave a loop early", k=3)
    assert top[0].chunk.document_id == "break"
    assert all(isinstance(r, ScoredChunk) for r in top)


def test_dense_retriever_filters_by_metadata_and_document() -> None:
    retriever = DenseRetriever(HashedWords(), ExactVectorStore(dim=256)).add(
        [
            chunk("a", "red apple", lang="en"),
            chunk("b", "red apple", lang="fr", document_id="other"),
        ]
    )
    assert [r.chunk.id for r in retriever.retrieve("red apple", 5, where={"lang": "fr"})] == ["b"]
    assert [
        r.chunk.id for r in retriever.retrieve("red apple", 5, where={"document_id": "doc"})
    ] == ["a"]


def test_dense_retrievers_on_two_tenants_do_not_mix() -> None:
    store = ExactVectorStore(dim=256, tenant="acme")
    acme = DenseRetriever(HashedWords(), store).add([chunk("x", "acme quarterly numbers")])
    globex = DenseRetriever(HashedWords(), store.for_tenant("globex")).add(
        [chunk("x", "globex secrets")]
    )
    assert [r.chunk.text for r in acme.retrieve("globex secrets", 5)] == ["acme quarterly numbers"]
    assert [r.chunk.text for r in globex.retrieve("acme", 5)] == ["globex secrets"]


def test_dense_batch_equals_single_and_fit_replaces() -> None:
    retriever = dense()
    batch = retriever.retrieve_batch(QUERIES, 4)
    assert [[r.chunk.id for r in rs] for rs in batch] == [
        [r.chunk.id for r in retriever.retrieve(q, 4)] for q in QUERIES
    ]
    retriever.fit([chunk("only", "just this one")])
    assert len(retriever) == 1
    assert len(retriever.store) == 1
    assert [r.chunk.id for r in retriever.retrieve("anything", 5)] == ["only"]


def test_dense_retriever_refuses_mismatches() -> None:
    with pytest.raises(ConfigError, match="256-dim"):
        DenseRetriever(HashedWords(), ExactVectorStore(dim=8))
    store = ExactVectorStore(dim=256)
    store.upsert(["stranger"], torch.ones(1, 256))
    with pytest.raises(NotFoundError, match="stranger"):
        DenseRetriever(HashedWords(), store).retrieve("x", 1)
    with pytest.raises(InvalidInputError, match="document_id"):
        DenseRetriever(HashedWords(), ExactVectorStore(dim=256)).add(
            [
                Chunk(
                    id="a", document_id="d", text="t", start=0, end=1, metadata={"document_id": "e"}
                )
            ]
        )


class Rewords(HashedWords):
    """A query encoder: reads a question with some words replaced by others."""

    def __init__(self, replace: dict[str, str]) -> None:
        super().__init__()
        self.replace = replace

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        return super().extract(
            [" ".join(self.replace.get(w, w) for w in text.split()) for text in items]
        )


def test_a_query_extractor_embeds_the_queries_and_the_chunks_keep_theirs() -> None:
    chunks = [chunk("a", "red apple"), chunk("b", "green pear")]
    plain = DenseRetriever(HashedWords(), ExactVectorStore(dim=256)).add(chunks)
    moved = DenseRetriever(
        HashedWords(), ExactVectorStore(dim=256), query_extractor=Rewords({"fruit": "green pear"})
    ).add(chunks)
    assert plain.retrieve("red fruit", 1)[0].chunk.id == "a"
    assert moved.retrieve("red fruit", 1)[0].chunk.id == "b"  # read as "red green pear"
    assert torch.equal(moved.vectors(["a"]), plain.vectors(["a"]))
    with pytest.raises(ConfigError, match="query_extractor gives 8-dim"):
        DenseRetriever(HashedWords(), ExactVectorStore(dim=256), query_extractor=HashedWords(8))
    with pytest.raises(InvalidInputError, match="query_extractor with a extract"):
        DenseRetriever(HashedWords(), ExactVectorStore(dim=256), query_extractor=object())  # type: ignore[arg-type]


# ---------------------------------------------------------------------- hybrid


class Fixed:
    """A retriever that returns a fixed ranking (for checking the fusion arithmetic)."""

    def __init__(self, ids: list[str]) -> None:
        self.chunks = [chunk(i, i) for i in ids]

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        return [ScoredChunk(chunk=c, score=float(-r)) for r, c in enumerate(self.chunks[:k])]


def test_reciprocal_rank_fusion_arithmetic() -> None:
    hybrid = HybridRetriever(
        [Fixed(["a", "b", "c"]), Fixed(["c", "a"])], rrf_k=10, weights=[1.0, 2.0]
    )
    results = hybrid.retrieve("q", k=3)
    expected = {"a": 1 / 11 + 2 / 12, "b": 1 / 12, "c": 1 / 13 + 2 / 11}
    assert [r.chunk.id for r in results] == sorted(expected, key=lambda i: -expected[i])
    assert [r.score for r in results] == pytest.approx(sorted(expected.values(), reverse=True))


def test_fusion_ties_keep_first_seen_order() -> None:
    hybrid = HybridRetriever([Fixed(["a", "b"]), Fixed(["b", "a"])])
    assert [r.chunk.id for r in hybrid.retrieve("q", 2)] == ["a", "b"]


def test_hybrid_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        HybridRetriever([])
    with pytest.raises(ConfigError):
        HybridRetriever([Fixed(["a"])], weights=[1.0, 2.0])
    with pytest.raises(ConfigError):
        HybridRetriever([Fixed(["a"])], rrf_k=-1)
    with pytest.raises(ConfigError):
        HybridRetriever(["not a retriever"])  # type: ignore[list-item]


# ------------------------------------------------------------------------- MMR


def test_mmr_with_lambda_one_is_plain_relevance() -> None:
    base = dense()
    mmr = MMRRetriever(base, lambda_=1.0, fetch_k=10)
    for query in QUERIES:
        assert [r.chunk.id for r in mmr.retrieve(query, 5)] == [
            r.chunk.id for r in base.retrieve(query, 5)
        ]


def test_mmr_skips_near_duplicates() -> None:
    chunks = [chunk("a", "red apple pie"), chunk("a2", "red apple pie"), chunk("b", "red car")]
    base = DenseRetriever(HashedWords(), ExactVectorStore(dim=256)).add(chunks)
    assert [r.chunk.id for r in base.retrieve("red apple", 2)] == ["a", "a2"]
    diverse = MMRRetriever(base, lambda_=0.5).retrieve("red apple", 2)
    assert [r.chunk.id for r in diverse] == ["a", "b"]
    assert diverse[0].score >= diverse[1].score


def test_mmr_uses_stored_vectors_or_the_given_extractor_alike() -> None:
    base = dense()
    stored = MMRRetriever(base, lambda_=0.3).retrieve(QUERIES[0], 5)
    embedded = MMRRetriever(base, HashedWords(), lambda_=0.3).retrieve(QUERIES[0], 5)
    assert [r.chunk.id for r in stored] == [r.chunk.id for r in embedded]


def test_mmr_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        MMRRetriever(dense(), lambda_=1.5)
    with pytest.raises(ConfigError, match="extractor"):
        MMRRetriever(BM25Retriever())


# ------------------------------------------------------------------- reranking


def test_a_reranker_reorders_candidates_and_cuts_to_k() -> None:
    shortest = FunctionReranker(
        lambda query, cands: [
            c.model_copy(update={"score": -float(len(c.chunk.text))}) for c in cands
        ]
    )
    assert isinstance(shortest, Reranker)
    retriever = RerankingRetriever(Fixed(["ccc", "a", "bb", "dddd"]), shortest, fetch_k=4)
    assert [r.chunk.id for r in retriever.retrieve("q", 3)] == ["a", "bb", "ccc"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            lambda q, cands: [ScoredChunk(chunk=chunk("invented", "x"), score=1.0)],
            "not a candidate",
        ),
        (lambda q, cands: [cands[0], cands[0]], "twice"),
        (lambda q, cands: [cands[0].model_copy(update={"score": float("nan")})], "score nan"),
        (lambda q, cands: "nope", "not a list"),
    ],
)
def test_a_misbehaving_reranker_is_caught(bad: object, message: str) -> None:
    retriever = RerankingRetriever(Fixed(["a", "b"]), FunctionReranker(bad))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=message):
        retriever.retrieve("q", 2)


def test_reranking_requires_a_reranker_object() -> None:
    with pytest.raises(ConfigError, match="FunctionReranker"):
        RerankingRetriever(Fixed(["a"]), lambda q, c: c)  # type: ignore[arg-type]
