"""Lexical features: bag-of-words vectors by feature hashing or TF-IDF.

Both extractors read text the same way (:func:`lexical_tokens`):

1. Unicode NFKC normalisation (full-width letters, ligatures folded), then
   ``str.casefold()`` when ``lowercase`` (the default).
2. Terms are the maximal runs of word characters — the regular expression
   ``\\w+``: letters, digits and the underscore in any script, so ``__init__``,
   ``utf8`` and ``naïve`` are one term each and punctuation separates terms.
3. With ``ngram_range=(1, 2)`` adjacent terms are also joined with one space
   into bigrams (``"open file"``), and so on up to the upper bound.

Term frequencies are weighted as configured (raw counts, binary, or sublinear
``1 + ln(count)``); TF-IDF multiplies them by ``idf(t) = ln((1 + n) / (1 + df(t))) + 1``
(the smoothed form of scikit-learn, so a term present everywhere keeps a small
weight). Rows are L2-normalised by default, so the inner product of two rows is
their cosine similarity.

Vectors are computed sparsely and returned dense, float32, ``(N, dim)`` as the
:class:`~genarch.protocols.FeatureExtractor` protocol says — keep ``dim``
(hashing) or ``max_features`` (TF-IDF) at a size whose dense matrix fits in memory.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Self

import torch
from pydantic import Field, model_validator

from genarch.configured import Configured
from genarch.errors import IntegrityError, InvalidInputError
from genarch.persistence import open_saved, reading, save_component
from genarch.protocols import PathLike
from genarch.schemas import Config
from genarch.validation import checked_texts

__all__ = [
    "HashingVectorizer",
    "HashingVectorizerConfig",
    "TfidfVectorizer",
    "TfidfVectorizerConfig",
    "lexical_tokens",
    "stable_hash",
]

_TERM = re.compile(r"\w+")
_STATE_FILE = "tfidf.json"  # config, vocabulary and IDF weights, all JSON
_FORMAT = "genarch.TfidfVectorizer"

TermWeighting = Literal["count", "binary", "sublinear"]


def lexical_tokens(
    text: str, *, lowercase: bool = True, ngram_range: tuple[int, int] = (1, 1)
) -> list[str]:
    """The terms of ``text``, as described in the module docstring.

    Examples:
        >>> lexical_tokens("Open the FILE: open()!")
        ['open', 'the', 'file', 'open']
        >>> lexical_tokens("read a file", ngram_range=(1, 2))
        ['read', 'a', 'file', 'read a', 'a file']
    """
    text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = text.casefold()
    words = _TERM.findall(text)
    low, high = ngram_range
    terms = words if low == 1 else []
    for n in range(max(low, 2), high + 1):
        terms += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return terms


def stable_hash(term: str) -> int:
    """A 32-bit hash of a term that is the same in every process and on every machine.

    CRC-32 of the term's UTF-8 bytes (Python's ``hash`` of a string changes
    between processes, so it cannot be used for saved features).

    Examples:
        >>> stable_hash("python")
        2765404344
    """
    return zlib.crc32(term.encode("utf-8"))


def _weight(count: int, weighting: TermWeighting) -> float:
    if weighting == "binary":
        return 1.0
    if weighting == "sublinear":
        return 1.0 + math.log(count)
    return float(count)


def _dense(
    rows: list[int], cols: list[int], values: list[float], shape: tuple[int, int], l2: bool
) -> torch.Tensor:
    """Build the dense float32 matrix from COO entries (duplicates summed), L2-normalising rows."""
    out = torch.zeros(shape, dtype=torch.float32)
    if rows:
        index = (torch.tensor(rows), torch.tensor(cols))
        out.index_put_(index, torch.tensor(values, dtype=torch.float32), accumulate=True)
    if l2:
        norms = torch.linalg.vector_norm(out, dim=1, keepdim=True)
        out = out / norms.clamp(min=1e-12)  # an empty text stays all zeros
    return out


def _check_ngram_range(ngram_range: tuple[int, int]) -> None:
    low, high = ngram_range
    if not 1 <= low <= high:
        raise ValueError(f"ngram_range must satisfy 1 <= low <= high, got {ngram_range}")


# ------------------------------------------------------------------ hashing


class HashingVectorizerConfig(Config):
    """Settings of :class:`HashingVectorizer`.

    Attributes:
        dim: number of hash buckets, the width of the vectors.
        lowercase: casefold text before splitting it into terms.
        ngram_range: term n-gram lengths, ``(1, 1)`` for single words.
        weighting: term-frequency weighting: ``"count"``, ``"binary"`` or
            ``"sublinear"`` (``1 + ln(count)``).
        signed: give each term a sign from its hash, so that colliding terms
            cancel out on average instead of adding up (Weinberger et al., 2009).
        normalize: L2-normalise each row.
    """

    dim: Annotated[int, Field(ge=1, le=1 << 24)] = 1 << 13
    lowercase: bool = True
    ngram_range: tuple[int, int] = (1, 1)
    weighting: TermWeighting = "count"
    signed: bool = True
    normalize: bool = True

    @model_validator(mode="after")
    def _valid_ngrams(self) -> Self:
        _check_ngram_range(self.ngram_range)
        return self


class HashingVectorizer(Configured[HashingVectorizerConfig]):
    """Bag-of-terms vectors by the hashing trick: no vocabulary, nothing to fit.

    Term ``t`` adds its weight to column ``stable_hash(t) % dim``, with the sign
    ``-1`` when bit 31 of the hash is set (if ``signed``). Two texts that share
    terms have a large inner product; the vectors never change once written,
    which suits a store that grows over time.

    Args:
        config: a :class:`HashingVectorizerConfig`; keyword fields are shorthand.

    Examples:
        >>> vectorizer = HashingVectorizer(dim=1024)
        >>> features = vectorizer.extract(["open a file", "open the file", "sort a list"])
        >>> features.shape
        torch.Size([3, 1024])
        >>> (features[0] @ features[1]).item() > (features[0] @ features[2]).item()
        True
    """

    @property
    def dim(self) -> int:
        """Width of the vectors (the number of buckets)."""
        return self.config.dim

    def fit(self, items: Sequence[str]) -> Self:
        """Nothing to learn: checks the items and returns the vectorizer itself.

        Raises:
            InvalidInputError: ``items`` is not a sequence of strings.
        """
        checked_texts(items, "HashingVectorizer.fit")
        return self

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        """Vectors of ``items``: float32, ``(len(items), dim)``.

        Raises:
            InvalidInputError: ``items`` is not a sequence of strings.
        """
        texts = checked_texts(items, "HashingVectorizer.extract")
        config = self.config
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for row, text in enumerate(texts):
            counts = Counter(
                lexical_tokens(text, lowercase=config.lowercase, ngram_range=config.ngram_range)
            )
            for term, count in counts.items():
                code = stable_hash(term)
                sign = -1.0 if config.signed and code >> 31 else 1.0
                rows.append(row)
                cols.append(code % config.dim)
                values.append(sign * _weight(count, config.weighting))
        return _dense(rows, cols, values, (len(texts), config.dim), config.normalize)


# ------------------------------------------------------------------ TF-IDF


class TfidfVectorizerConfig(Config):
    """Settings of :class:`TfidfVectorizer`.

    Attributes:
        lowercase: casefold text before splitting it into terms.
        ngram_range: term n-gram lengths, ``(1, 1)`` for single words.
        weighting: term-frequency weighting: ``"count"``, ``"binary"`` or
            ``"sublinear"`` (``1 + ln(count)``).
        min_df: keep terms found in at least this many fitted documents.
        max_df: keep terms found in at most this fraction of fitted documents
            (``0.9`` drops near-universal words; ``1.0`` keeps all).
        max_features: keep only this many terms, the most frequent across
            documents (ties broken alphabetically); ``None`` keeps all.
        normalize: L2-normalise each row.
    """

    lowercase: bool = True
    ngram_range: tuple[int, int] = (1, 1)
    weighting: TermWeighting = "sublinear"
    min_df: Annotated[int, Field(ge=1)] = 1
    max_df: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    max_features: Annotated[int, Field(ge=1)] | None = None
    normalize: bool = True

    @model_validator(mode="after")
    def _valid_ngrams(self) -> Self:
        _check_ngram_range(self.ngram_range)
        return self


class TfidfVectorizer(Configured[TfidfVectorizerConfig]):
    """TF-IDF vectors over a vocabulary learned by :meth:`fit`.

    Column ``j`` belongs to the ``j``-th term of :attr:`vocabulary` (sorted
    alphabetically); terms never seen during fitting are ignored. Fitting
    twice on the same texts gives the same vocabulary and weights.

    Args:
        config: a :class:`TfidfVectorizerConfig`; keyword fields are shorthand.

    Examples:
        >>> corpus = ["open a file", "close the file", "sort a list", "sort the list"]
        >>> tfidf = TfidfVectorizer().fit(corpus)
        >>> tfidf.vocabulary
        ['a', 'close', 'file', 'list', 'open', 'sort', 'the']
        >>> scores = tfidf.extract(["how to open a file"]) @ tfidf.extract(corpus).T
        >>> int(scores.argmax())
        0
    """

    def __init__(
        self, config: TfidfVectorizerConfig | Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        Configured.__init__(self, config, **fields)
        self._vocabulary: list[str] | None = None
        self._index: dict[str, int] = {}
        self._idf = torch.zeros(0)

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has given it a vocabulary."""
        return self._vocabulary is not None

    @property
    def vocabulary(self) -> list[str]:
        """The terms, in column order.

        Raises:
            InvalidInputError: the vectorizer is not fitted.
        """
        return list(self._fitted("vocabulary"))

    @property
    def idf(self) -> torch.Tensor:
        """The inverse document frequency of each term, in column order (a copy)."""
        self._fitted("idf")
        return self._idf.clone()

    @property
    def dim(self) -> int:
        """Width of the vectors: the vocabulary size.

        Raises:
            InvalidInputError: the vectorizer is not fitted.
        """
        return len(self._fitted("dim"))

    def _fitted(self, what: str) -> list[str]:
        if self._vocabulary is None:
            raise InvalidInputError(
                f"TfidfVectorizer.{what} needs a fitted vectorizer: call fit(texts) first"
            )
        return self._vocabulary

    def _terms(self, text: str) -> list[str]:
        config = self.config
        return lexical_tokens(text, lowercase=config.lowercase, ngram_range=config.ngram_range)

    def fit(self, items: Sequence[str]) -> Self:
        """Learn the vocabulary and IDF weights from ``items``; returns the vectorizer.

        Raises:
            InvalidInputError: ``items`` is not a non-empty sequence of strings, or
                no term survives ``min_df``/``max_df``.
        """
        texts = checked_texts(items, "TfidfVectorizer.fit")
        if not texts:
            raise InvalidInputError("TfidfVectorizer.fit needs at least one text")
        config = self.config
        document_frequency: Counter[str] = Counter()
        for text in texts:
            document_frequency.update(set(self._terms(text)))
        limit = config.max_df * len(texts)
        kept = [t for t, df in document_frequency.items() if config.min_df <= df <= limit]
        if config.max_features is not None and len(kept) > config.max_features:
            kept = sorted(kept, key=lambda t: (-document_frequency[t], t))[: config.max_features]
        if not kept:
            raise InvalidInputError(
                f"TfidfVectorizer.fit found no terms in {len(texts)} text(s) "
                f"with min_df={config.min_df} and max_df={config.max_df}"
            )
        vocabulary = sorted(kept)
        n = len(texts)
        idf = [math.log((1 + n) / (1 + document_frequency[t])) + 1.0 for t in vocabulary]
        self._set_state(vocabulary, torch.tensor(idf, dtype=torch.float32))
        return self

    def _set_state(self, vocabulary: list[str], idf: torch.Tensor) -> None:
        self._vocabulary = vocabulary
        self._index = {term: column for column, term in enumerate(vocabulary)}
        self._idf = idf

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        """TF-IDF vectors of ``items``: float32, ``(len(items), dim)``.

        Raises:
            InvalidInputError: the vectorizer is not fitted, or ``items`` is not a
                sequence of strings.
        """
        texts = checked_texts(items, "TfidfVectorizer.extract")
        vocabulary = self._fitted("extract")
        config = self.config
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        idf = self._idf.tolist()
        for row, text in enumerate(texts):
            for term, count in Counter(self._terms(text)).items():
                column = self._index.get(term)
                if column is not None:
                    rows.append(row)
                    cols.append(column)
                    values.append(_weight(count, config.weighting) * idf[column])
        return _dense(rows, cols, values, (len(texts), len(vocabulary)), config.normalize)

    # ------------------------------------------------------------ persistence

    def save(self, directory: PathLike) -> None:
        """Write the config, vocabulary and IDF weights into ``tfidf.json``, atomically.

        Raises:
            InvalidInputError: the vectorizer is not fitted.
        """
        vocabulary = self._fitted("save")
        save_component(
            directory,
            _FORMAT,
            config=self.config,
            # float32 values are exact in JSON's doubles, so the round trip is lossless
            header={"vocabulary": vocabulary, "idf": self._idf.tolist()},
            header_file=_STATE_FILE,
        )

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load a fitted vectorizer written by :meth:`save`.

        Raises:
            NotFoundError: ``directory`` holds no saved vectorizer.
            IntegrityError: the file is corrupt or was written by another component.
        """
        saved = open_saved(directory, _FORMAT, header_file=_STATE_FILE)
        vectorizer = cls(saved.config(TfidfVectorizerConfig))
        vocabulary = saved.field("vocabulary")
        with reading(_FORMAT, saved.root):
            idf = torch.tensor(saved.field("idf"), dtype=torch.float32)
        if (
            not isinstance(vocabulary, list)
            or not all(isinstance(t, str) for t in vocabulary)
            or len(set(vocabulary)) != len(vocabulary)
            or idf.shape != (len(vocabulary),)
        ):
            raise IntegrityError(
                f"the saved {_FORMAT} in {str(saved.root)!r}: "
                "the vocabulary and IDF weights do not match"
            )
        vectorizer._set_state(vocabulary, idf)
        return vectorizer

    def __repr__(self) -> str:
        fitted = f"{len(self._vocabulary)} terms" if self._vocabulary is not None else "not fitted"
        return f"TfidfVectorizer({self.config!r}, {fitted})"
