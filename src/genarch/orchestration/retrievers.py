"""Retrievers: dense and hybrid (reciprocal-rank fusion).

Every retriever implements :class:`~genarch.protocols.Retriever`:
``retrieve(query, k)`` returns at most ``k`` :class:`~genarch.schemas.ScoredChunk`\\ s,
best first, deterministically (equal scores keep a documented order). The lexical
retriever, :class:`~genarch.orchestration.bm25.BM25Retriever`, lives in its own
module, and the ones that reorder a base retriever's candidates (MMR,
re-ranking) in :mod:`genarch.orchestration.reranking`.

* :class:`DenseRetriever` — any ``FeatureExtractor[str]`` + any ``VectorStore``.
* :class:`HybridRetriever` — reciprocal-rank fusion (Cormack et al., SIGIR 2009)
  of any retrievers: ``score(d) = sum_r w_r / (rrf_k + rank_r(d))``.
* :class:`TitledRetriever` — any indexing retriever over chunks with their
  document's title in front ("contextual" chunk indexing), returning the
  chunks as they are, so citations keep their exact spans.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Self

import torch

from genarch._deprecated import moved_module
from genarch.errors import ConfigError, InvalidInputError, NotFoundError
from genarch.orchestration.vector_validation import check_k, trusted_record
from genarch.protocols import FeatureExtractor, Retriever, VectorStore
from genarch.schemas import Chunk, Document, Metadata, MetadataValue, ScoredChunk
from genarch.validation import checked_items, describe

__all__ = ["DenseRetriever", "HybridRetriever", "TitledRetriever", "document_titles"]

# Names that lived here until the reordering retrievers got their own module.
__getattr__ = moved_module(
    __name__,
    dict.fromkeys(
        ("EmbeddingReranker", "FunctionReranker", "MMRRetriever", "Reranker", "RerankingRetriever"),
        "genarch.orchestration.reranking",
    ),
)

_FIELDS = {"chunk", "score"}


def scored_chunk(chunk: Chunk, score: float) -> ScoredChunk:
    """A result record from values already checked (no re-validation)."""
    return trusted_record(ScoredChunk, _FIELDS, {"chunk": chunk, "score": score})


def check_query(query: object, k: object, where: str) -> tuple[str, int]:
    """A str query and a positive int ``k``."""
    if not isinstance(query, str):
        raise InvalidInputError(f"{where} expected a str query, got {describe(query)}")
    return query, check_k(k, where)


def check_positive(value: object, name: str, where: str) -> int:
    """A positive int setting, else :class:`~genarch.errors.ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where} expected {name} to be a positive int, got {describe(value)}")
    return value


def embed_texts(extractor: FeatureExtractor[str], texts: list[str], where: str) -> torch.Tensor:
    """The extractor's ``(len(texts), dim)`` vectors as CPU float32, shape checked."""
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
        query_extractor: embeds the queries instead of ``extractor`` (same
            ``dim``; asymmetric search, e.g. a :class:`~genarch.features.QueryAdapter`);
            the chunks keep ``extractor``'s vectors.

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
        self,
        extractor: FeatureExtractor[str],
        store: VectorStore,
        *,
        batch_size: int = 64,
        query_extractor: FeatureExtractor[str] | None = None,
    ) -> None:
        for name, value, needed in (
            ("extractor", extractor, "extract"),
            ("store", store, "search"),
            ("query_extractor", query_extractor or extractor, "extract"),
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
        if query_extractor is not None and query_extractor.dim != extractor.dim:
            raise ConfigError(
                f"DenseRetriever: the query_extractor gives {query_extractor.dim}-dim vectors "
                f"but the extractor {extractor.dim}-dim ones"
            )
        self.extractor = extractor
        self.query_extractor = query_extractor or extractor
        self.store = store
        self.batch_size = check_positive(batch_size, "batch_size", "DenseRetriever")
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
            vectors = embed_texts(self.extractor, [c.text for c in batch], "DenseRetriever.add")
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
            check_query(query, k, "DenseRetriever.retrieve")
        check_k(k, "DenseRetriever.retrieve")
        if not queries:
            return []
        vectors = embed_texts(self.query_extractor, list(queries), "DenseRetriever.retrieve")
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
                row.append(scored_chunk(chunk, hit.score))
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
        return embed_texts(self.extractor, texts, "DenseRetriever.vectors")

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
        self.fetch_k = check_positive(fetch_k, "fetch_k", "HybridRetriever")

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        """The ``k`` chunks with the best fused reciprocal-rank score."""
        query, k = check_query(query, k, "HybridRetriever.retrieve")
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
        return [scored_chunk(chunks[key], fused[key]) for key in best]

    def __repr__(self) -> str:
        return f"HybridRetriever({self.retrievers!r}, rrf_k={self.rrf_k}, weights={self.weights})"


# ----------------------------------------------------------------------- titled


def document_titles(documents: Iterable[Document]) -> dict[str, str]:
    """Each document's title: its first non-blank line, quotes removed.

    Examples:
        >>> document_titles([Document(id="pass", text='The "pass" statement\\n****\\n\\nText.')])
        {'pass': 'The pass statement'}
    """
    titles: dict[str, str] = {}
    for document in checked_items(documents, Document, where="document_titles"):
        first = next((line for line in document.text.splitlines() if line.strip()), "")
        titles[document.id] = " ".join(first.replace('"', " ").split())
    return titles


class TitledRetriever:
    """Indexes each chunk with its document's title in front; returns the chunks unchanged.

    A chunk deep inside a topic rarely repeats the topic's name ("Binary
    bitwise operations", "Code Objects"), though questions often use it. The
    base retriever indexes ``title + "\\n" + chunk.text`` (a copy of the chunk
    with that text) and every result is mapped back to the original chunk, so
    its text and character span, and the citations built on them, stay exact.

    Args:
        base: an indexing retriever with ``fit(chunks)`` (e.g.
            :class:`~genarch.orchestration.bm25.BM25Retriever`).
        titles: document id → title (see :func:`document_titles`); a chunk of
            a document without one is indexed as it is.

    Examples:
        >>> from genarch.orchestration.bm25 import BM25Retriever
        >>> chunks = [Chunk(id=f"{d}#0", document_id=d, text=t, start=0, end=len(t))
        ...           for d, t in [("bitwise", "The ^ operator yields XOR."), ("power", "It binds tightly.")]]
        >>> titled = TitledRetriever(BM25Retriever(), {"bitwise": "Bitwise operations"}).fit(chunks)
        >>> [(r.chunk.id, r.chunk.text) for r in titled.retrieve("bitwise operations", k=1)]
        [('bitwise#0', 'The ^ operator yields XOR.')]
    """

    def __init__(self, base: Retriever, titles: Mapping[str, str]) -> None:
        if not callable(getattr(base, "fit", None)) or not callable(
            getattr(base, "retrieve", None)
        ):
            raise ConfigError(
                f"TitledRetriever expected a retriever with fit() and retrieve(), got {describe(base)}"
            )
        if not isinstance(titles, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in titles.items()
        ):
            raise ConfigError(
                f"TitledRetriever expected titles as a mapping of str to str, got {describe(titles)}"
            )
        self.base = base
        self.titles = dict(titles)
        self._chunks: dict[str, Chunk] = {}

    def fit(self, chunks: Iterable[Chunk]) -> Self:
        """Index exactly ``chunks`` (each with its title in front).

        Raises:
            InvalidInputError: an item is not a Chunk, or chunk ids repeat.
        """
        items = list(checked_items(chunks, Chunk, where="TitledRetriever.fit"))
        if len({c.id for c in items}) != len(items):
            raise InvalidInputError("TitledRetriever.fit got the same chunk id more than once")
        titled = [
            c.model_copy(update={"text": f"{self.titles[c.document_id]}\n{c.text}"})
            if self.titles.get(c.document_id)
            else c
            for c in items
        ]
        self.base.fit(titled)  # type: ignore[attr-defined]
        self._chunks = {c.id: c for c in items}
        return self

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        """The base retriever's results, each with its original chunk.

        Raises:
            InvalidInputError: a non-str query or a bad ``k``.
            NotFoundError: the base returned a chunk this retriever did not index.
        """
        query, k = check_query(query, k, "TitledRetriever.retrieve")
        results = []
        for result in self.base.retrieve(query, k):
            original = self._chunks.get(result.chunk.id)
            if original is None:
                raise NotFoundError(
                    f"TitledRetriever: the base returned chunk {result.chunk.id!r}, "
                    "which was not indexed through fit()"
                )
            results.append(scored_chunk(original, result.score))
        return results

    def __repr__(self) -> str:
        return f"TitledRetriever({self.base!r}, titles={len(self.titles)})"
