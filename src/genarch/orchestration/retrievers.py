"""Retrievers: dense, hybrid (reciprocal-rank fusion), MMR diversification and re-ranking.

Every class here implements :class:`~genarch.protocols.Retriever`:
``retrieve(query, k)`` returns at most ``k`` :class:`~genarch.schemas.ScoredChunk`\\ s,
best first, deterministically (equal scores keep a documented order). The lexical
retriever, :class:`~genarch.orchestration.bm25.BM25Retriever`, lives in its own module.

* :class:`DenseRetriever` — any ``FeatureExtractor[str]`` + any ``VectorStore``.
* :class:`HybridRetriever` — reciprocal-rank fusion (Cormack et al., SIGIR 2009)
  of any retrievers: ``score(d) = sum_r w_r / (rrf_k + rank_r(d))``.
* :class:`MMRRetriever` — maximal marginal relevance (Carbonell & Goldstein,
  SIGIR 1998) over a base retriever's candidates:
  ``argmax λ·sim(q, d) - (1 - λ)·max_{s ∈ selected} sim(d, s)``.
* :class:`RerankingRetriever` — a base retriever's candidates re-scored by a
  :class:`Reranker` (e.g. :class:`EmbeddingReranker`, or your cross-encoder).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, Self, runtime_checkable

import torch

from genarch.errors import ConfigError, InvalidInputError, NotFoundError
from genarch.orchestration.vectorstore import check_k, trusted_record
from genarch.protocols import FeatureExtractor, Retriever, VectorStore
from genarch.schemas import Chunk, Metadata, MetadataValue, ScoredChunk
from genarch.validation import checked_items, describe

__all__ = [
    "DenseRetriever",
    "EmbeddingReranker",
    "FunctionReranker",
    "HybridRetriever",
    "MMRRetriever",
    "Reranker",
    "RerankingRetriever",
]

_FIELDS = {"chunk", "score"}


def _scored(chunk: Chunk, score: float) -> ScoredChunk:
    return trusted_record(ScoredChunk, _FIELDS, {"chunk": chunk, "score": score})


def _check_query(query: object, k: object, where: str) -> tuple[str, int]:
    if not isinstance(query, str):
        raise InvalidInputError(f"{where} expected a str query, got {describe(query)}")
    return query, check_k(k, where)


def _check_positive(value: object, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where} expected {name} to be a positive int, got {describe(value)}")
    return value


def _embed(extractor: FeatureExtractor[str], texts: list[str], where: str) -> torch.Tensor:
    vectors = extractor.extract(texts)
    if not isinstance(vectors, torch.Tensor) or vectors.shape[:1] != (len(texts),):
        shape = tuple(vectors.shape) if isinstance(vectors, torch.Tensor) else describe(vectors)
        raise InvalidInputError(
            f"{where}: the extractor returned {shape} for {len(texts)} texts, "
            f"expected a ({len(texts)}, dim) tensor"
        )
    return vectors.detach().to(dtype=torch.float32, device="cpu")


# ------------------------------------------------------------------------ dense


class DenseRetriever:
    """Embeds chunks with a feature extractor and finds them in a vector store.

    The retriever keeps the chunks it indexed (the store keeps ids, vectors and
    metadata: the chunk's own metadata plus ``document_id``), so a shared store
    must only hold this retriever's ids in the tenant it is given. Bind the
    store to a tenant (``store.for_tenant("acme")``) to keep tenants apart.

    Args:
        extractor: any :class:`~genarch.protocols.FeatureExtractor` of strings.
        store: any :class:`~genarch.protocols.VectorStore` of the extractor's ``dim``.
        batch_size: texts embedded per ``extract`` call when indexing.

    Examples:
        >>> import torch
        >>> from genarch.orchestration.vectorstore import ExactVectorStore
        >>> class Letters:  # a toy extractor: letter counts
        ...     dim = 26
        ...     def extract(self, items):
        ...         out = torch.zeros(len(items), 26)
        ...         for row, text in enumerate(items):
        ...             for ch in text.lower():
        ...                 if "a" <= ch <= "z":
        ...                     out[row, ord(ch) - 97] += 1
        ...         return out
        >>> chunks = [Chunk(id=str(i), document_id="d", text=t, start=0, end=len(t))
        ...           for i, t in enumerate(["aaa", "zzz"])]
        >>> retriever = DenseRetriever(Letters(), ExactVectorStore(dim=26)).add(chunks)
        >>> [r.chunk.text for r in retriever.retrieve("zz top", k=1)]
        ['zzz']
    """

    def __init__(
        self, extractor: FeatureExtractor[str], store: VectorStore, *, batch_size: int = 64
    ) -> None:
        for name, value, needed in (
            ("extractor", extractor, "extract"),
            ("store", store, "search"),
        ):
            if not callable(getattr(value, needed, None)):
                raise InvalidInputError(
                    f"DenseRetriever expected a {name} with a {needed}() method, got {describe(value)}"
                )
        if extractor.dim != store.dim:
            raise ConfigError(
                f"DenseRetriever: the extractor gives {extractor.dim}-dim vectors "
                f"but the store holds {store.dim}-dim ones"
            )
        self.extractor = extractor
        self.store = store
        self.batch_size = _check_positive(batch_size, "batch_size", "DenseRetriever")
        self._chunks: dict[str, Chunk] = {}

    def __len__(self) -> int:
        return len(self._chunks)

    def add(self, chunks: Iterable[Chunk]) -> Self:
        """Embed and store ``chunks`` (a chunk with an existing id replaces it).

        Raises:
            InvalidInputError: an item is not a Chunk, ids repeat, or a chunk's
                metadata has a ``document_id`` that differs from its own.
        """
        items = list(checked_items(chunks, Chunk, where="DenseRetriever.add"))
        metadata: list[Metadata] = []
        for chunk in items:
            given = chunk.metadata.get("document_id", chunk.document_id)
            if given != chunk.document_id:
                raise InvalidInputError(
                    f"DenseRetriever.add: chunk {chunk.id!r} has metadata document_id={given!r} "
                    f"but document_id={chunk.document_id!r}"
                )
            metadata.append({**chunk.metadata, "document_id": chunk.document_id})
        if len({c.id for c in items}) != len(items):
            raise InvalidInputError("DenseRetriever.add got the same chunk id more than once")
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            vectors = _embed(self.extractor, [c.text for c in batch], "DenseRetriever.add")
            self.store.upsert(
                [c.id for c in batch], vectors, metadata[start : start + self.batch_size]
            )
            self._chunks.update((c.id, c) for c in batch)
        return self

    def fit(self, chunks: Iterable[Chunk]) -> Self:
        """Index exactly ``chunks``: remove what this retriever indexed before, then :meth:`add`."""
        items = list(checked_items(chunks, Chunk, where="DenseRetriever.fit"))
        if self._chunks:
            self.store.delete(list(self._chunks))
            self._chunks = {}
        return self.add(items)

    def retrieve(
        self, query: str, k: int, *, where: Mapping[str, MetadataValue] | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` chunks whose vectors score best against the query's (the store's metric).

        Args:
            query: the text to embed.
            k: how many chunks at most.
            where: a metadata filter passed to the store (chunk metadata or ``document_id``).

        Raises:
            InvalidInputError: a non-str query or a bad ``k``.
            NotFoundError: the store returned an id this retriever did not index.
        """
        return self.retrieve_batch([query], k, where=where)[0]

    def retrieve_batch(
        self,
        queries: Sequence[str],
        k: int,
        *,
        where: Mapping[str, MetadataValue] | None = None,
    ) -> list[list[ScoredChunk]]:
        """:meth:`retrieve` for many queries: one ``extract`` and one store search."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InvalidInputError(
                f"DenseRetriever expected a list of str queries, got {describe(queries)}"
            )
        for query in queries:
            _check_query(query, k, "DenseRetriever.retrieve")
        check_k(k, "DenseRetriever.retrieve")
        if not queries:
            return []
        vectors = _embed(self.extractor, list(queries), "DenseRetriever.retrieve")
        results = []
        for hits in self.store.search(vectors, k, where=where):
            row = []
            for hit in hits:
                chunk = self._chunks.get(hit.id)
                if chunk is None:
                    raise NotFoundError(
                        f"the store holds id {hit.id!r}, which this DenseRetriever did not index; "
                        "give each retriever its own store or tenant"
                    )
                row.append(_scored(chunk, hit.score))
            results.append(row)
        return results

    def vectors(self, chunk_ids: Sequence[str]) -> torch.Tensor:
        """The indexed vectors of ``chunk_ids`` (from the store when it offers ``get_vectors``)."""
        getter: Callable[[Sequence[str]], torch.Tensor] | None = getattr(
            self.store, "get_vectors", None
        )
        if getter is not None:
            return getter(chunk_ids)
        missing = [i for i in chunk_ids if i not in self._chunks]
        if missing:
            raise NotFoundError(f"DenseRetriever.vectors: unknown chunk ids {missing[:5]}")
        texts = [self._chunks[i].text for i in chunk_ids]
        return _embed(self.extractor, texts, "DenseRetriever.vectors")

    def __repr__(self) -> str:
        return f"DenseRetriever({self.extractor!r}, {self.store!r})"


# ----------------------------------------------------------------------- hybrid


class HybridRetriever:
    """Reciprocal-rank fusion of several retrievers (e.g. BM25 + dense).

    Each retriever returns its ``fetch_k`` best; a chunk's fused score is
    ``sum_r weight_r / (rrf_k + rank_r)`` over the lists it appears in (rank from 1).
    Only ranks matter, so retrievers with incomparable scores fuse cleanly.
    Equal fused scores keep the order in which chunks were first seen
    (retriever order, then rank). Chunks are identified by ``chunk.id``.

    Args:
        retrievers: at least one :class:`~genarch.protocols.Retriever`.
        rrf_k: the constant damping the top ranks (60 in the original paper).
        weights: one non-negative weight per retriever (default all 1).
        fetch_k: candidates taken from each retriever (at least ``k``).

    Examples:
        >>> from genarch.orchestration.bm25 import BM25Retriever
        >>> chunks = [Chunk(id=i, document_id="d", text=t, start=0, end=len(t))
        ...           for i, t in [("a", "red apples"), ("b", "green apples"), ("c", "red cars")]]
        >>> one = BM25Retriever(stopwords=()).fit(chunks)
        >>> hybrid = HybridRetriever([one, one], rrf_k=60)
        >>> [r.chunk.id for r in hybrid.retrieve("red apples", k=2)]
        ['a', 'b']
    """

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        *,
        rrf_k: float = 60.0,
        weights: Sequence[float] | None = None,
        fetch_k: int = 50,
    ) -> None:
        if not isinstance(retrievers, Sequence) or not retrievers:
            raise ConfigError(
                f"HybridRetriever expected a non-empty list of retrievers, got {describe(retrievers)}"
            )
        for index, retriever in enumerate(retrievers):
            if not callable(getattr(retriever, "retrieve", None)):
                raise ConfigError(
                    f"HybridRetriever: retriever {index} has no retrieve() method: {describe(retriever)}"
                )
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int | float) or not rrf_k >= 0:
            raise ConfigError(f"HybridRetriever expected rrf_k >= 0, got {describe(rrf_k)}")
        weights = [1.0] * len(retrievers) if weights is None else list(weights)
        if len(weights) != len(retrievers) or not all(
            isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
            for w in weights
        ):
            raise ConfigError(
                f"HybridRetriever expected {len(retrievers)} finite non-negative weights, got {weights!r}"
            )
        self.retrievers = list(retrievers)
        self.rrf_k = float(rrf_k)
        self.weights = [float(w) for w in weights]
        self.fetch_k = _check_positive(fetch_k, "fetch_k", "HybridRetriever")

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        """The ``k`` chunks with the best fused reciprocal-rank score."""
        query, k = _check_query(query, k, "HybridRetriever.retrieve")
        fetch = max(self.fetch_k, k)
        fused: dict[str, float] = {}
        chunks: dict[str, Chunk] = {}
        for retriever, weight in zip(self.retrievers, self.weights, strict=True):
            for rank, result in enumerate(retriever.retrieve(query, fetch), start=1):
                key = result.chunk.id
                chunks.setdefault(key, result.chunk)
                fused[key] = fused.get(key, 0.0) + weight / (self.rrf_k + rank)
        first_seen = {key: position for position, key in enumerate(fused)}
        best = sorted(fused, key=lambda key: (-fused[key], first_seen[key]))[:k]
        return [_scored(chunks[key], fused[key]) for key in best]

    def __repr__(self) -> str:
        return f"HybridRetriever({self.retrievers!r}, rrf_k={self.rrf_k}, weights={self.weights})"


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
        self.fetch_k = _check_positive(fetch_k, "fetch_k", "MMRRetriever")

    def _vectors(self, query: str, candidates: list[ScoredChunk]) -> torch.Tensor:
        """Unit vectors: row 0 the query, then one per candidate."""
        where = "MMRRetriever.retrieve"
        if self.extractor is None:
            assert isinstance(self.base, DenseRetriever)
            q = _embed(self.base.extractor, [query], where)
            c = self.base.vectors([r.chunk.id for r in candidates]).to(torch.float32)
            vectors = torch.cat([q, c])
        else:
            vectors = _embed(self.extractor, [query] + [r.chunk.text for r in candidates], where)
        return torch.nn.functional.normalize(vectors, dim=1)

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        """``k`` relevant and mutually different chunks, in the order MMR picked them."""
        query, k = _check_query(query, k, "MMRRetriever.retrieve")
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
            picked.append(_scored(candidates[best].chunk, float(value[best])))
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
            _embed(self.extractor, texts, "EmbeddingReranker"), dim=1
        )
        scores: list[float] = (vectors[1:] @ vectors[0]).tolist()
        return [_scored(c.chunk, s) for c, s in zip(candidates, scores, strict=True)]


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
        self.fetch_k = _check_positive(fetch_k, "fetch_k", "RerankingRetriever")

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        """The ``k`` candidates the reranker scores highest."""
        query, k = _check_query(query, k, "RerankingRetriever.retrieve")
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
