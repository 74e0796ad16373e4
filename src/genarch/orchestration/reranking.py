"""Retrievers that reorder a base retriever's candidates: MMR diversification and re-ranking.

Both take a base :class:`~genarch.protocols.Retriever`'s ``fetch_k`` best and
return ``k`` of them in a new order (each implements the protocol itself):

* :class:`MMRRetriever` — maximal marginal relevance (Carbonell & Goldstein,
  SIGIR 1998): ``argmax λ·sim(q, d) - (1 - λ)·max_{s ∈ selected} sim(d, s)``.
* :class:`RerankingRetriever` — the candidates re-scored by a
  :class:`Reranker` (e.g. :class:`EmbeddingReranker`, or your cross-encoder).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch

from genarch.errors import ConfigError, InvalidInputError
from genarch.orchestration.retrievers import (
    DenseRetriever,
    check_positive,
    check_query,
    embed_texts,
    scored_chunk,
)
from genarch.protocols import FeatureExtractor, Retriever
from genarch.schemas import ScoredChunk
from genarch.validation import describe

__all__ = [
    "EmbeddingReranker",
    "FunctionReranker",
    "MMRRetriever",
    "Reranker",
    "RerankingRetriever",
]


# -------------------------------------------------------------------------- MMR


class MMRRetriever:
    """Diversifies a base retriever's candidates by maximal marginal relevance.

    From the base's ``fetch_k`` best, picks one at a time the candidate that
    maximises ``lambda_ * cos(query, c) - (1 - lambda_) * max cos(c, picked)``.
    ``lambda_ = 1`` is pure relevance; lower values trade relevance for variety.
    The returned score is that MMR value (non-increasing down the list).
    Equal values go to the candidate the base ranked higher.

    Args:
        base: any retriever giving the candidates.
        extractor: embeds the query and candidates. ``None`` with a
            :class:`DenseRetriever` base reuses its extractor and stored vectors.
        lambda_: relevance weight in ``[0, 1]``.
        fetch_k: candidates taken from the base (at least ``k``).

    Examples:
        >>> from genarch.orchestration.bm25 import BM25Retriever
        >>> from genarch.schemas import Chunk
        >>> class Words:  # toy extractor: which of three words occur
        ...     dim = 3
        ...     def extract(self, items):
        ...         return torch.tensor([[float(w in t) for w in ("red", "apple", "car")] for t in items])
        >>> chunks = [Chunk(id=i, document_id="d", text=t, start=0, end=len(t)) for i, t in
        ...           [("a", "red apple"), ("b", "red apple again"), ("c", "red car")]]
        >>> base = BM25Retriever().fit(chunks)
        >>> [r.chunk.id for r in MMRRetriever(base, Words(), lambda_=0.3).retrieve("red", k=2)]
        ['a', 'c']
    """

    def __init__(
        self,
        base: Retriever,
        extractor: FeatureExtractor[str] | None = None,
        *,
        lambda_: float = 0.5,
        fetch_k: int = 20,
    ) -> None:
        if not callable(getattr(base, "retrieve", None)):
            raise ConfigError(f"MMRRetriever expected a base retriever, got {describe(base)}")
        if extractor is None and not isinstance(base, DenseRetriever):
            raise ConfigError(
                "MMRRetriever needs an extractor to embed candidates (or a DenseRetriever base)"
            )
        if (
            isinstance(lambda_, bool)
            or not isinstance(lambda_, int | float)
            or not 0 <= lambda_ <= 1
        ):
            raise ConfigError(f"MMRRetriever expected 0 <= lambda_ <= 1, got {describe(lambda_)}")
        self.base = base
        self.extractor = extractor
        self.lambda_ = float(lambda_)
        self.fetch_k = check_positive(fetch_k, "fetch_k", "MMRRetriever")

    def _vectors(self, query: str, candidates: list[ScoredChunk]) -> torch.Tensor:
        """Unit vectors: row 0 the query, then one per candidate."""
        where = "MMRRetriever.retrieve"
        if self.extractor is None:
            assert isinstance(self.base, DenseRetriever)
            q = embed_texts(self.base.extractor, [query], where)
            c = self.base.vectors([r.chunk.id for r in candidates]).to(torch.float32)
            vectors = torch.cat([q, c])
        else:
            vectors = embed_texts(
                self.extractor, [query] + [r.chunk.text for r in candidates], where
            )
        return torch.nn.functional.normalize(vectors, dim=1)

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        """``k`` relevant and mutually different chunks, in the order MMR picked them."""
        query, k = check_query(query, k, "MMRRetriever.retrieve")
        candidates = self.base.retrieve(query, max(self.fetch_k, k))
        if not candidates:
            return []
        vectors = self._vectors(query, candidates)
        relevance = vectors[1:] @ vectors[0]  # (C,)
        similarity = vectors[1:] @ vectors[1:].T  # (C, C)
        lam = self.lambda_
        penalty = torch.full_like(relevance, -math.inf)  # max similarity to the picked ones
        available = torch.ones_like(relevance, dtype=torch.bool)
        picked: list[ScoredChunk] = []
        for _ in range(min(k, len(candidates))):
            redundancy = torch.where(torch.isinf(penalty), torch.zeros_like(penalty), penalty)
            value = lam * relevance - (1 - lam) * redundancy
            value = value.masked_fill(~available, -math.inf)
            best = int(value.argmax())  # argmax returns the first maximum: the base's order
            picked.append(scored_chunk(candidates[best].chunk, float(value[best])))
            available[best] = False
            penalty = torch.maximum(penalty, similarity[best])
        return picked

    def __repr__(self) -> str:
        return f"MMRRetriever({self.base!r}, lambda_={self.lambda_}, fetch_k={self.fetch_k})"


# -------------------------------------------------------------------- reranking


@runtime_checkable
class Reranker(Protocol):
    """Re-scores candidates for a query.

    ``rerank(query, candidates)`` returns some or all of the candidates (the
    same chunks) with new scores, in any order; higher is better.
    """

    def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]: ...


class FunctionReranker:
    """A :class:`Reranker` from a function ``(query, candidates) -> candidates with new scores``.

    Examples:
        >>> shortest_first = FunctionReranker(
        ...     lambda query, cands: [c.model_copy(update={"score": -len(c.chunk.text)}) for c in cands]
        ... )
    """

    def __init__(self, function: Callable[[str, Sequence[ScoredChunk]], list[ScoredChunk]]) -> None:
        if not callable(function):
            raise ConfigError(f"FunctionReranker expected a callable, got {describe(function)}")
        self.function = function

    def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """Call the function."""
        return self.function(query, candidates)


class EmbeddingReranker:
    """Re-scores candidates by the cosine similarity of another (stronger) extractor's vectors."""

    def __init__(self, extractor: FeatureExtractor[str]) -> None:
        if not callable(getattr(extractor, "extract", None)):
            raise ConfigError(f"EmbeddingReranker expected an extractor, got {describe(extractor)}")
        self.extractor = extractor

    def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """Candidates with score = cos(query, chunk text)."""
        if not candidates:
            return []
        texts = [query] + [c.chunk.text for c in candidates]
        vectors = torch.nn.functional.normalize(
            embed_texts(self.extractor, texts, "EmbeddingReranker"), dim=1
        )
        scores: list[float] = (vectors[1:] @ vectors[0]).tolist()
        return [scored_chunk(c.chunk, s) for c, s in zip(candidates, scores, strict=True)]


class RerankingRetriever:
    """A base retriever's ``fetch_k`` candidates, re-scored by a :class:`Reranker`.

    The reranker may drop candidates but not invent or repeat them; its scores
    must be finite. Equal new scores keep the base's order.

    Args:
        base: any retriever.
        reranker: any object with ``rerank(query, candidates)`` (wrap a plain
            function with :class:`FunctionReranker`).
        fetch_k: candidates taken from the base (at least ``k``).

    Raises:
        InvalidInputError: (from ``retrieve``) the reranker returned a chunk that
            was not a candidate, a repeat, or a non-finite score.
    """

    def __init__(self, base: Retriever, reranker: Reranker, *, fetch_k: int = 20) -> None:
        if not callable(getattr(base, "retrieve", None)):
            raise ConfigError(f"RerankingRetriever expected a base retriever, got {describe(base)}")
        if not callable(getattr(reranker, "rerank", None)):
            raise ConfigError(
                f"RerankingRetriever expected a Reranker (an object with rerank(query, candidates)); "
                f"got {describe(reranker)} — wrap a function in FunctionReranker"
            )
        self.base = base
        self.reranker = reranker
        self.fetch_k = check_positive(fetch_k, "fetch_k", "RerankingRetriever")

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        """The ``k`` candidates the reranker scores highest."""
        query, k = check_query(query, k, "RerankingRetriever.retrieve")
        candidates = self.base.retrieve(query, max(self.fetch_k, k))
        position = {c.chunk.id: i for i, c in enumerate(candidates)}
        reranked = self.reranker.rerank(query, list(candidates))
        where = f"RerankingRetriever: the reranker {type(self.reranker).__name__}"
        if not isinstance(reranked, list | tuple):
            raise InvalidInputError(f"{where} returned {describe(reranked)}, not a list")
        seen: set[str] = set()
        for item in reranked:
            if not isinstance(item, ScoredChunk):
                raise InvalidInputError(f"{where} returned {describe(item)}, not a ScoredChunk")
            key = item.chunk.id
            if key not in position or key in seen:
                problem = "twice" if key in seen else "though it was not a candidate"
                raise InvalidInputError(f"{where} returned chunk {key!r} {problem}")
            if not math.isfinite(item.score):
                raise InvalidInputError(f"{where} gave chunk {key!r} the score {item.score}")
            seen.add(key)
        ordered = sorted(reranked, key=lambda r: (-r.score, position[r.chunk.id]))
        return list(ordered[:k])

    def __repr__(self) -> str:
        return f"RerankingRetriever({self.base!r}, {self.reranker!r}, fetch_k={self.fetch_k})"
