"""Lexical retrieval with Okapi BM25 over an inverted index of torch arrays.

Scoring (the "Lucene" variant of Kamphuis et al., ECIR 2020, which is also the
default of Lucene/Elasticsearch and of the ``bm25s`` package)::

    score(q, d) = sum over query tokens t (repeats count) of
                  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

Tokenisation (documented so that another engine can reproduce the ranking):
lower-case the text (``lowercase=True``), take every match of
``token_pattern`` (default ``(?u)\\b\\w\\w+\\b``: runs of two or more word
characters, as scikit-learn's ``CountVectorizer``), drop ``stopwords``
(default: Lucene's 33 English stop words), and, with ``stem=True`` only, fold
each token with :func:`light_stem` ("literals", "literal" → ``literal``;
"defines", "defined", "define" → ``defin``). No stemming by default. With the
default settings, ``bm25s.tokenize(texts, stopwords="en")`` and
``bm25s.BM25(k1=1.5, b=0.75, method="lucene")`` rank identically.

The index stores, for each term, the documents containing it and their
precomputed per-term scores (a CSC layout in numpy arrays: ``bounds``, ``docs``,
``weights``; no scipy), so a query is a few slices and one scatter-add, and
only the documents that share a token with the query are ranked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Self

import numpy as np
import torch
from pydantic import Field, field_validator

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.orchestration.citations import light_stem
from genarch.orchestration.vector_validation import check_k, trusted_record
from genarch.schemas import Chunk, Config, ScoredChunk
from genarch.validation import checked_items, describe

__all__ = ["ENGLISH_STOPWORDS", "BM25Config", "BM25Retriever", "light_stem"]

ENGLISH_STOPWORDS: tuple[str, ...] = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
)  # fmt: skip
"""Lucene's default English stop words (``EnglishAnalyzer``), also ``bm25s``'s ``"en"`` list."""

_SCORED_FIELDS = {"chunk", "score"}


class BM25Config(Config):
    """Settings of :class:`BM25Retriever`.

    Attributes:
        k1: term-frequency saturation (``0`` ignores repeats; larger rewards them more).
        b: length normalisation, from ``0`` (none) to ``1`` (full).
        lowercase: fold case before tokenising.
        token_pattern: a regular expression; each match is a token.
        stopwords: tokens to drop (after lower-casing).
        stem: fold each remaining token with :func:`light_stem` (indexing and
            queries alike), so that "float literal" finds "Floating point
            literals".
    """

    k1: Annotated[float, Field(ge=0.0)] = 1.5
    b: Annotated[float, Field(ge=0.0, le=1.0)] = 0.75
    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"
    stopwords: tuple[str, ...] = ENGLISH_STOPWORDS
    stem: bool = False

    @field_validator("token_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from None
        return value


class BM25Retriever(Configured[BM25Config]):
    """Okapi BM25 over chunks (a :class:`~genarch.protocols.Retriever`).

    Args:
        config: a :class:`BM25Config`; keyword fields are shorthand (``k1=``, ``b=``, ...).

    Raises:
        ConfigError: invalid settings, or both a config and keyword fields.

    Examples:
        >>> from genarch.schemas import Chunk
        >>> chunks = [
        ...     Chunk(id="a", document_id="d", text="The pass statement does nothing.", start=0, end=32),
        ...     Chunk(id="b", document_id="d", text="Break leaves the loop.", start=33, end=55),
        ... ]
        >>> retriever = BM25Retriever().fit(chunks)
        >>> [r.chunk.id for r in retriever.retrieve("what does pass do?", k=2)]
        ['a']
    """

    def __init__(self, config: BM25Config | Mapping[str, Any] | None = None, **fields: Any) -> None:
        Configured.__init__(self, config, **fields)
        self._split = re.compile(self._config.token_pattern).findall
        self._stop = frozenset(self._config.stopwords)
        self._stems: dict[str, str] = {}
        self._reset()

    def _reset(self) -> None:
        self._chunks: list[Chunk] = []
        self._ids: set[str] = set()
        self._vocab: dict[str, int] = {}
        self._token_ids: list[int] = []  # every document's token ids, concatenated
        self._lengths: list[int] = []
        self._bounds: list[int] = [0]  # term t's postings: [bounds[t], bounds[t + 1])
        self._docs = np.empty(0, dtype=np.int64)
        self._weights = np.empty(0, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def vocabulary_size(self) -> int:
        """Number of distinct tokens in the index."""
        return len(self._vocab)

    def tokenize(self, text: str) -> list[str]:
        """The tokens BM25 sees in ``text`` (see the module docstring).

        Examples:
            >>> BM25Retriever().tokenize("The for-loop: a for statement, in Python 3!")
            ['loop', 'statement', 'python']
        """
        if not isinstance(text, str):
            raise InvalidInputError(f"BM25Retriever.tokenize expected a str, got {describe(text)}")
        return self._tokens(text.lower() if self._config.lowercase else text)

    def _tokens(self, text: str) -> list[str]:
        """The tokens of already case-folded ``text``: split, stop words dropped, stemmed."""
        stop = self._stop
        tokens = [t for t in self._split(text) if t not in stop]
        if not self._config.stem:
            return tokens
        stems = self._stems
        out = []
        for token in tokens:
            stem = stems.get(token)
            if stem is None:
                stem = stems[token] = light_stem(token)
            out.append(stem)
        return out

    # ---------------------------------------------------------------- indexing

    def fit(self, chunks: Iterable[Chunk]) -> Self:
        """Index ``chunks`` from scratch (replacing anything indexed before).

        Raises:
            InvalidInputError: an item is not a Chunk, or two chunks share an id.
        """
        self._reset()
        return self.add(chunks)

    def add(self, chunks: Iterable[Chunk]) -> Self:
        """Add ``chunks`` to the index (statistics such as idf are recomputed over everything).

        Raises:
            InvalidInputError: an item is not a Chunk, or its id is already indexed.
                Nothing is added then.
        """
        new = list(checked_items(chunks, Chunk, where="BM25Retriever.add"))
        ids = [c.id for c in new]
        seen = set(self._ids)
        for id_ in ids:
            if id_ in seen:
                raise InvalidInputError(f"BM25Retriever.add: chunk id {id_!r} is indexed twice")
            seen.add(id_)
        vocab = dict(self._vocab)
        token_ids: list[int] = []
        lengths: list[int] = []
        lower = self._config.lowercase
        for chunk in new:
            tokens = self._tokens(chunk.text.lower() if lower else chunk.text)
            before = len(token_ids)
            token_ids.extend([vocab.setdefault(t, len(vocab)) for t in tokens])
            lengths.append(len(token_ids) - before)
        self._chunks.extend(new)
        self._ids = seen
        self._vocab = vocab
        self._token_ids.extend(token_ids)
        self._lengths.extend(lengths)
        self._build()
        return self

    def _build(self) -> None:
        """Recompute the postings and their weights from the token ids (vectorised numpy)."""
        n, vocabulary = len(self._chunks), len(self._vocab)
        if n == 0 or not self._token_ids:
            self._bounds = [0] * (vocabulary + 1)
            self._docs = np.empty(0, dtype=np.int64)
            self._weights = np.empty(0, dtype=np.float32)
            return
        tokens = np.asarray(self._token_ids, dtype=np.int64)
        lengths = np.asarray(self._lengths, dtype=np.int64)
        doc_of_token = np.repeat(np.arange(n, dtype=np.int64), lengths)
        # one (term, document) pair per distinct occurrence, sorted by term then document
        pairs, tf = np.unique(tokens * n + doc_of_token, return_counts=True)
        terms, docs = np.divmod(pairs, n)
        df = np.bincount(terms, minlength=vocabulary)
        # as Lucene and bm25s: idf and saturation in float64, each posting's weight stored as float32
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        k1, b = self._config.k1, self._config.b
        norm = k1 * ((1 - b) + b * lengths / lengths.mean())  # per document
        saturation = tf / (norm[docs] + tf)
        self._weights = (idf[terms].astype(np.float64) * saturation).astype(np.float32)
        self._docs = docs
        self._bounds = [0, *np.cumsum(df).tolist()]

    # --------------------------------------------------------------- querying

    def _postings(self, query: str) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Documents and weights of every query token's postings (repeats included) and the
        number of query tokens found; None when no query token is indexed."""
        if not isinstance(query, str):
            raise InvalidInputError(f"BM25Retriever expected a str query, got {describe(query)}")
        vocab, bounds = self._vocab, self._bounds
        spans = [
            (bounds[t], bounds[t + 1])
            for t in map(vocab.get, self.tokenize(query))
            if t is not None
        ]
        if not spans:
            return None
        docs, weights = self._docs, self._weights
        if len(spans) == 1:
            ((start, end),) = spans
            return docs[start:end], weights[start:end], 1
        return (
            np.concatenate([docs[a:b] for a, b in spans]),
            np.concatenate([weights[a:b] for a, b in spans]),
            len(spans),
        )

    def _score(self, postings: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
        scores = np.zeros(len(self._chunks), dtype=np.float32)
        np.add.at(scores, postings[0], postings[1])  # float32, query-token order: as bm25s
        return scores

    def scores(self, query: str) -> torch.Tensor:
        """BM25 score of every indexed chunk for ``query``, ``(len(self),)`` float32."""
        postings = self._postings(query)
        if postings is None:
            return torch.zeros(len(self._chunks), dtype=torch.float32)
        return torch.from_numpy(self._score(postings))

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        """The ``k`` best-scoring chunks for ``query`` (only chunks sharing a token with it).

        Equal scores come in indexing order.

        Raises:
            InvalidInputError: ``query`` is not a str, or ``k`` is not a positive int.
        """
        check_k(k, "BM25Retriever.retrieve")
        postings = self._postings(query)
        if postings is None:
            return []
        scores = self._score(postings)
        # Rank only the documents that share a token with the query. A document
        # occurs at most once per query token, so the k*tokens best postings hold
        # every document scoring at least the k-th best (ties at the cut included).
        documents, spans = postings[0], postings[2]
        need = k * spans
        if documents.shape[0] > need:
            posting_scores = scores[documents]
            cut = documents.shape[0] - need
            threshold = np.partition(posting_scores, cut)[cut]
            documents = documents[posting_scores >= threshold]
        candidates = np.unique(documents)
        values = scores[candidates]
        order = np.lexsort((candidates, -values))[:k]  # best first, then indexing order
        chunks = self._chunks
        return [
            trusted_record(ScoredChunk, _SCORED_FIELDS, {"chunk": chunks[i], "score": s})
            for i, s in zip(candidates[order].tolist(), values[order].tolist(), strict=True)
        ]

    def retrieve_batch(self, queries: Sequence[str], k: int) -> list[list[ScoredChunk]]:
        """:meth:`retrieve` for each query."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InvalidInputError(
                f"BM25Retriever.retrieve_batch expected a list of str, got {describe(queries)}"
            )
        check_k(k, "BM25Retriever.retrieve_batch")
        return [self.retrieve(q, k) for q in queries]

    def __repr__(self) -> str:
        return f"BM25Retriever({self._config!r}, chunks={len(self)})"
