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
(default: Lucene's 33 English stop words). No stemming. With the same settings,
``bm25s.tokenize(texts, stopwords="en")`` and ``bm25s.BM25(k1=1.5, b=0.75,
method="lucene")`` rank identically.

The index stores, for each term, the documents containing it and their
precomputed per-term scores (a CSC layout: ``bounds``, ``docs``, ``weights``),
so a query is a few slices, one ``index_add_`` and one ``topk``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Self

import numpy as np
import torch
from pydantic import BaseModel, Field, field_validator

from genarch.errors import ConfigError, InvalidInputError
from genarch.orchestration.vectorstore import check_k, top_k_stable, trusted_record
from genarch.schemas import Chunk, Config, ScoredChunk
from genarch.validation import checked_items, describe

__all__ = ["ENGLISH_STOPWORDS", "BM25Config", "BM25Retriever"]

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
    """

    k1: Annotated[float, Field(ge=0.0)] = 1.5
    b: Annotated[float, Field(ge=0.0, le=1.0)] = 0.75
    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"
    stopwords: tuple[str, ...] = ENGLISH_STOPWORDS

    @field_validator("token_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from None
        return value


class BM25Retriever:
    """Okapi BM25 over chunks (a :class:`~genarch.protocols.Retriever`).

    Args:
        config: a :class:`BM25Config`; keyword fields are shorthand (``k1=``, ``b=``, ...).

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

    def __init__(self, config: BM25Config | None = None, **fields: Any) -> None:
        if config is not None and fields:
            raise ConfigError("pass either a BM25Config or keyword fields, not both")
        self._config = config if config is not None else BM25Config(**fields)
        self._split = re.compile(self._config.token_pattern).findall
        self._stop = frozenset(self._config.stopwords)
        self._reset()

    def _reset(self) -> None:
        self._chunks: list[Chunk] = []
        self._ids: set[str] = set()
        self._vocab: dict[str, int] = {}
        self._token_ids: list[int] = []  # every document's token ids, concatenated
        self._lengths: list[int] = []
        self._bounds: list[int] = [0]  # term t's postings: [bounds[t], bounds[t + 1])
        self._docs = torch.empty(0, dtype=torch.int64)
        self._weights = torch.empty(0, dtype=torch.float32)

    @property
    def config(self) -> BM25Config:
        """The frozen configuration."""
        return self._config

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Build (unfitted) from a config object or mapping."""
        return cls(BM25Config.coerce(config))

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
        if self._config.lowercase:
            text = text.lower()
        stop = self._stop
        return [t for t in self._split(text) if t not in stop]

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
        split, stop, lower = self._split, self._stop, self._config.lowercase
        for chunk in new:
            tokens = split(chunk.text.lower() if lower else chunk.text)
            before = len(token_ids)
            token_ids.extend([vocab.setdefault(t, len(vocab)) for t in tokens if t not in stop])
            lengths.append(len(token_ids) - before)
        self._chunks.extend(new)
        self._ids = seen
        self._vocab = vocab
        self._token_ids.extend(token_ids)
        self._lengths.extend(lengths)
        self._build()
        return self

    def _build(self) -> None:
        """Recompute the postings and their weights from the token ids (vectorised)."""
        n, vocabulary = len(self._chunks), len(self._vocab)
        if n == 0 or not self._token_ids:
            self._bounds = [0] * (vocabulary + 1)
            self._docs = torch.empty(0, dtype=torch.int64)
            self._weights = torch.empty(0, dtype=torch.float32)
            return
        tokens = np.asarray(self._token_ids, dtype=np.int64)
        lengths_np = np.asarray(self._lengths, dtype=np.int64)
        doc_of_token = np.repeat(np.arange(n, dtype=np.int64), lengths_np)
        # one (term, document) pair per distinct occurrence, sorted by term then document
        # (numpy's sort: torch's CPU sort of int64 is about ten times slower here)
        pairs_np, tf_np = np.unique(tokens * n + doc_of_token, return_counts=True)
        pairs, tf = torch.from_numpy(pairs_np), torch.from_numpy(tf_np)
        lengths = torch.from_numpy(lengths_np)
        terms, docs = pairs // n, pairs % n
        df = torch.bincount(terms, minlength=vocabulary)
        idf = torch.log1p((n - df + 0.5) / (df + 0.5)).to(torch.float32)  # float64 math, as Lucene
        k1, b = self._config.k1, self._config.b
        average = float(lengths.double().mean())
        norm = k1 * ((1 - b) + b * lengths.double() / average)  # per document
        tf64 = tf.double()
        saturation = tf64 / (norm[docs] + tf64)
        self._weights = (idf[terms].double() * saturation).to(torch.float32)
        self._docs = docs
        self._bounds = [0, *torch.cumsum(df, 0).tolist()]

    # --------------------------------------------------------------- querying

    def scores(self, query: str) -> torch.Tensor:
        """BM25 score of every indexed chunk for ``query``, ``(len(self),)`` float32."""
        if not isinstance(query, str):
            raise InvalidInputError(f"BM25Retriever expected a str query, got {describe(query)}")
        scores = torch.zeros(len(self._chunks), dtype=torch.float32)
        vocab = self._vocab
        terms = [vocab[t] for t in self.tokenize(query) if t in vocab]
        if terms:
            bounds, docs, weights = self._bounds, self._docs, self._weights
            scores.index_add_(
                0,
                torch.cat([docs[bounds[t] : bounds[t + 1]] for t in terms]),
                torch.cat([weights[bounds[t] : bounds[t + 1]] for t in terms]),
            )
        return scores

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        """The ``k`` best-scoring chunks for ``query`` (only chunks sharing a token with it).

        Equal scores come in indexing order.

        Raises:
            InvalidInputError: ``query`` is not a str, or ``k`` is not a positive int.
        """
        check_k(k, "BM25Retriever.retrieve")
        scores = self.scores(query)
        if scores.numel() == 0:
            return []
        values, indices = top_k_stable(scores.unsqueeze(0), k)
        chunks = self._chunks
        return [
            trusted_record(ScoredChunk, _SCORED_FIELDS, {"chunk": chunks[i], "score": s})
            for s, i in zip(values[0], indices[0], strict=True)
            if s > 0.0
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
