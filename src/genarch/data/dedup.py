"""Exact and near-duplicate removal for documents: hashing, MinHash and LSH banding.

Two :class:`~genarch.protocols.DataProcessor` stages keep the *first*
occurrence of each document and drop later copies:

* :class:`ExactDeduplicator` — a 128-bit BLAKE2b digest of the normalised
  text (case, Unicode form and whitespace folded; punctuation optionally).
* :class:`NearDeduplicator` — MinHash signatures of character or word
  n-gram shingles [Broder 1997], bucketed by LSH banding [Indyk & Motwani 1998;
  Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3], every
  candidate verified with the Jaccard estimate of the two signatures, so a
  chance bucket collision never drops a document.

Both are lazy streams: the only state is what one call has kept (digests,
signatures and LSH buckets of the kept documents), dropped when the call ends.
:meth:`NearDeduplicator.find_duplicates` returns a typed
:class:`DuplicateReport` (which later ids were dropped as duplicates of which
kept id); ``process_counting`` feeds the pipeline trace with
``duplicates:exact`` and ``duplicates:near``.

MinHash is vectorised with numpy: each shingle is hashed once to a 32-bit key
(a polynomial rolling hash over code points, finalised with SplitMix64), then
all ``num_perm`` hash functions ``((a * key + b) mod 2**64) >> 32``
(multiply-add-shift, 2-universal for 32-bit keys [Dietzfelbinger 1996]) are
applied in one array operation, and ``minimum.reduceat`` takes the minima per
document.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field, model_validator

from genarch.errors import ConfigError, InvalidInputError
from genarch.schemas import Config, Document, Record
from genarch.validation import checked_items, describe

__all__ = [
    "DuplicateCluster",
    "DuplicateMatch",
    "DuplicateReport",
    "ExactDeduplicator",
    "ExactDeduplicatorConfig",
    "LshParameters",
    "MinHasher",
    "NearDeduplicator",
    "NearDeduplicatorConfig",
    "lsh_parameters",
    "normalize_for_matching",
]

logger = logging.getLogger(__name__)

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]

_NON_WORD = re.compile(r"[\W_]+")
_SPACES = re.compile(r"\s+")
_MAX_KEY = np.uint32(0xFFFFFFFF)  # signature value of a document without shingles
_POLY = np.uint64(0x100000001B3)  # odd multiplier of the rolling polynomial hash
_SEGMENT_CHARS = 1 << 14  # a long text is shingled in segments of this many characters
_BLOCK_KEYS = 1 << 13  # shingle keys hashed per numpy block: num_perm * this * 8 bytes temporary


# --------------------------------------------------------------------- helpers


def normalize_for_matching(
    text: str, *, ignore_case: bool = True, ignore_punctuation: bool = False
) -> str:
    """The form of ``text`` that deduplication compares.

    NFKC-normalised, optionally case-folded, with every run of whitespace (and,
    with ``ignore_punctuation``, of punctuation and underscores) turned into
    one space, stripped.

    Examples:
        >>> normalize_for_matching("  Hello,\\n  WORLD!  ", ignore_punctuation=True)
        'hello world'
    """
    text = unicodedata.normalize("NFKC", text)
    if ignore_case:
        text = text.casefold()
    pattern = _NON_WORD if ignore_punctuation else _SPACES
    return pattern.sub(" ", text).strip()


def _mix64(x: U64) -> U64:
    """SplitMix64's finaliser: spreads every input bit over all 64 output bits."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _windows(tokens: U64, size: int) -> U64:
    """Hash every run of ``size`` consecutive tokens (one run if there are fewer)."""
    count = len(tokens) - size + 1
    if count < 1:
        size, count = len(tokens), 1
    hashes = np.zeros(count, dtype=np.uint64)
    for offset in range(size):
        hashes *= _POLY
        hashes += tokens[offset : offset + count]
    return _mix64(hashes)


class LshParameters(Record):
    """How a signature is cut into LSH bands: ``bands`` bands of ``rows`` values.

    Two documents become candidates when all ``rows`` values of at least one
    band agree, which happens with probability ``1 - (1 - s**rows)**bands`` for
    Jaccard similarity ``s``.
    """

    bands: Annotated[int, Field(ge=1)]
    rows: Annotated[int, Field(ge=1)]

    def candidate_probability(self, similarity: float) -> float:
        """The chance that two documents of this Jaccard similarity share a bucket."""
        return float(1.0 - (1.0 - similarity**self.rows) ** self.bands)


@functools.lru_cache(maxsize=64)
def lsh_parameters(
    threshold: float, num_perm: int, false_negative_weight: float = 0.9
) -> LshParameters:
    """Choose bands and rows for a Jaccard ``threshold`` and ``num_perm`` hash functions.

    Minimises the weighted area of the false-positive region (similarity below
    the threshold, yet a candidate) plus the false-negative region (above it,
    yet never a candidate) of the banding S-curve, over every ``bands * rows
    <= num_perm``. Candidates are verified afterwards, so false positives only
    cost time; weigh false negatives higher to favour recall.

    Examples:
        >>> p = lsh_parameters(0.8, 128)
        >>> p.bands * p.rows <= 128 and p.candidate_probability(0.9) > 0.95
        True
    """
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}")
    if num_perm < 1:
        raise ConfigError(f"num_perm must be positive, got {num_perm!r}")
    if not 0.0 <= false_negative_weight <= 1.0:
        raise ConfigError(f"false_negative_weight must be in [0, 1], got {false_negative_weight!r}")
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    bands = np.array([b for b, _ in pairs], dtype=np.float64)[:, None]
    rows = np.array([r for _, r in pairs], dtype=np.float64)[:, None]
    below = np.linspace(0.0, threshold, 129)[None, :]
    above = np.linspace(threshold, 1.0, 129)[None, :]
    false_pos = np.trapezoid(1.0 - (1.0 - below**rows) ** bands, below, axis=1)
    false_neg = np.trapezoid((1.0 - above**rows) ** bands, above, axis=1)
    cost = (1.0 - false_negative_weight) * false_pos + false_negative_weight * false_neg
    b, r = pairs[int(np.argmin(cost))]
    return LshParameters(bands=b, rows=r)


# --------------------------------------------------------------------- MinHash


class MinHasher:
    """Vectorised MinHash signatures of character or word n-gram shingles.

    Args:
        num_perm: hash functions per signature (signature length).
        shingle: ``"char"`` for character n-grams, ``"word"`` for word n-grams.
        shingle_size: n, the shingle length in characters or words. A text
            shorter than that is one shingle; a text without characters has none.
        seed: seeds the hash functions; equal seeds give equal signatures.

    Texts are hashed as given: normalise them first (as the deduplicators do
    with :func:`normalize_for_matching`). Word shingles split on single spaces.

    Examples:
        >>> hasher = MinHasher(num_perm=64, shingle="char", shingle_size=3, seed=1)
        >>> a, b = hasher.signatures(["the quick brown fox", "the quick brown fix"])
        >>> 0.5 < MinHasher.similarity(a, b) < 1.0
        True
    """

    def __init__(
        self,
        num_perm: int = 128,
        shingle: Literal["char", "word"] = "char",
        shingle_size: int = 5,
        seed: int = 0,
    ) -> None:
        if not isinstance(num_perm, int) or num_perm < 1:
            raise ConfigError(f"num_perm must be a positive int, got {describe(num_perm)}")
        if shingle not in ("char", "word"):
            raise ConfigError(f"shingle must be 'char' or 'word', got {describe(shingle)}")
        if not isinstance(shingle_size, int) or shingle_size < 1:
            raise ConfigError(f"shingle_size must be a positive int, got {describe(shingle_size)}")
        if not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative int, got {describe(seed)}")
        self.num_perm = num_perm
        self.shingle = shingle
        self.shingle_size = shingle_size
        rng = np.random.default_rng(seed)
        bits = np.iinfo(np.uint64).max
        self._a = rng.integers(1, bits, size=num_perm, dtype=np.uint64, endpoint=True) | np.uint64(
            1
        )
        self._b = rng.integers(0, bits, size=num_perm, dtype=np.uint64, endpoint=True)

    # -------------------------------------------------------------- shingles

    def _segments(self, text: str) -> Iterator[str]:
        """Cut a long text into overlapping segments so no shingle is lost or added."""
        if len(text) <= _SEGMENT_CHARS:
            yield text
            return
        start, n = 0, self.shingle_size
        while True:
            end = start + _SEGMENT_CHARS
            if end >= len(text):
                yield text[start:]
                return
            if self.shingle == "char":
                yield text[start:end]
                start = end - (n - 1)
                continue
            cut = text.rfind(" ", start + 1, end)
            if cut == -1:  # one enormous word: let it run to its end
                cut = text.find(" ", end)
                if cut == -1:
                    yield text[start:]
                    return
            yield text[start:cut]
            back = cut  # restart n - 1 words before the cut, so windows overlap
            for _ in range(n - 1):
                found = text.rfind(" ", start, back)
                if found == -1:
                    break
                back = found
            start = back + 1 if back != cut else cut + 1

    def shingle_keys(self, text: str) -> U32:
        """The 32-bit keys of the shingles of ``text`` (unsorted, may repeat)."""
        parts = [self._many_keys([segment])[0] for segment in self._segments(text)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint32)

    def _many_keys(self, texts: Sequence[str]) -> list[U32]:
        """The shingle keys of each text, computed for all texts in one vectorised pass."""
        n = self.shingle_size
        lengths = np.fromiter((len(t) for t in texts), dtype=np.intp, count=len(texts))
        joined = "".join(texts).encode("utf-32-le", "surrogatepass")
        codes = np.frombuffer(joined, dtype=np.uint32).astype(np.uint64)
        text_starts = np.zeros(len(texts), dtype=np.intp)
        np.cumsum(lengths[:-1], out=text_starts[1:])
        if self.shingle == "char":
            tokens, counts = codes, lengths
        else:
            # Word hashes without a Python loop: every character contributes
            # mix(code, offset in its word); a word's hash is the sum of its characters'.
            is_space = codes == 32
            boundary = np.zeros(len(codes), dtype=bool)
            boundary[1:] = is_space[:-1]
            boundary[text_starts[lengths > 0]] = True
            starts = np.flatnonzero(boundary)
            word_lengths = np.diff(np.append(starts, len(codes)))
            offsets = np.arange(len(codes), dtype=np.uint64)
            offsets -= np.repeat(starts, word_lengths).astype(np.uint64)
            contributions = _mix64(codes | (offsets << np.uint64(21)))  # code points < 2**21
            contributions[is_space] = 0
            tokens = np.add.reduceat(contributions, starts) if len(starts) else codes[:0]
            counts = np.diff(np.searchsorted(starts, np.append(text_starts, len(codes))))
        first = np.zeros(len(texts), dtype=np.intp)  # each text's first token
        np.cumsum(counts[:-1], out=first[1:])
        # Windows over the joined tokens; those that cross a text boundary are never used.
        keys = (
            (_windows(tokens, n) >> np.uint64(32)).astype(np.uint32) if len(tokens) >= n else None
        )
        result = []
        for start, count in zip(first.tolist(), counts.tolist(), strict=True):
            if count >= n:
                assert keys is not None
                result.append(keys[start : start + count - n + 1])
            elif count:  # shorter than one shingle: the whole text is the shingle
                short = _windows(tokens[start : start + count], n) >> np.uint64(32)
                result.append(short.astype(np.uint32))
            else:
                result.append(np.empty(0, dtype=np.uint32))
        return result

    # ------------------------------------------------------------ signatures

    def signature(self, text: str) -> U32:
        """The MinHash signature of one text: ``num_perm`` uint32 values."""
        signature: U32 = self.signatures([text])[0]
        return signature

    def signatures(self, texts: Sequence[str]) -> U32:
        """Signatures of many texts at once, shape ``(len(texts), num_perm)``, uint32.

        A text without shingles (the empty string) gets all values ``2**32 - 1``.

        Raises:
            InvalidInputError: ``texts`` is not a sequence of strings.
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidInputError(
                f"MinHasher.signatures expected a sequence of str, got {describe(texts)}"
            )
        out = np.full((len(texts), self.num_perm), _MAX_KEY, dtype=np.uint32)
        keys: list[U32] = []  # key arrays waiting to be folded, in row order
        rows: list[int] = []
        pending = 0  # keys waiting to be folded
        waiting: list[int] = []  # rows of short texts whose keys are not computed yet
        waiting_chars = 0

        def add(row: int, row_keys: U32) -> None:
            nonlocal pending
            if len(row_keys):
                keys.append(row_keys)
                rows.append(row)
                pending += len(row_keys)
            if pending >= _BLOCK_KEYS:
                self._fold(out, keys, rows)
                keys.clear()
                rows.clear()
                pending = 0

        def compute_waiting() -> None:
            computed = self._many_keys([texts[r] for r in waiting])
            for row, row_keys in zip(waiting, computed, strict=True):
                add(row, row_keys)
            waiting.clear()

        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(
                    f"MinHasher.signatures expected str items, but item {row} is {describe(text)}"
                )
            if len(text) <= _SEGMENT_CHARS:
                waiting.append(row)
                waiting_chars += len(text)
                if waiting_chars >= _BLOCK_KEYS:
                    compute_waiting()
                    waiting_chars = 0
                continue
            compute_waiting()  # keep rows in order
            waiting_chars = 0
            for segment in self._segments(text):
                add(row, self._many_keys([segment])[0])
        compute_waiting()
        if keys:
            self._fold(out, keys, rows)
        return out

    def _fold(self, out: U32, keys: list[U32], rows: list[int]) -> None:
        """Fold the minima of a block of key arrays into the signature rows they belong to."""
        flat = np.concatenate(keys).astype(np.uint64)
        starts = np.zeros(len(keys), dtype=np.intp)
        np.cumsum([len(k) for k in keys[:-1]], out=starts[1:])
        values = np.multiply.outer(self._a, flat)  # (num_perm, keys)
        values += self._b[:, None]
        # The top 32 bits are the hash; shifting is monotone, so shift the minima only.
        minima = np.minimum.reduceat(values, starts, axis=1)  # (num_perm, pieces)
        minima >>= np.uint64(32)
        minima = minima.T.astype(np.uint32)  # (pieces, num_perm)
        row_index = np.asarray(rows, dtype=np.intp)
        unique_rows, first = np.unique(row_index, return_index=True)  # rows are non-decreasing
        grouped = np.minimum.reduceat(minima, first, axis=0)
        out[unique_rows] = np.minimum(out[unique_rows], grouped)

    @staticmethod
    def similarity(a: U32, b: U32) -> float:
        """The Jaccard estimate of two signatures: the fraction of equal values."""
        if a.shape != b.shape:
            raise InvalidInputError(f"signatures differ in shape: {a.shape} vs {b.shape}")
        return float(np.count_nonzero(a == b) / a.shape[-1])


# ----------------------------------------------------------------- report records


class DuplicateMatch(Record):
    """One dropped document and the kept document it duplicates.

    Attributes:
        duplicate_id: id of the dropped document.
        kept_id: id of the earlier, kept document.
        kind: ``"exact"`` (same normalised text) or ``"near"`` (MinHash).
        similarity: 1.0 for exact matches, the signature Jaccard estimate for near ones.
        position: 0-based position of the dropped document in the input stream.
    """

    duplicate_id: str
    kept_id: str
    kind: Literal["exact", "near"]
    similarity: Annotated[float, Field(ge=0.0, le=1.0)]
    position: Annotated[int, Field(ge=0)]


class DuplicateCluster(Record):
    """A kept document and every later document dropped as its duplicate."""

    kept_id: str
    duplicate_ids: tuple[str, ...]


class DuplicateReport(Record):
    """What a deduplicator found in one stream.

    Attributes:
        documents: documents read.
        kept: documents kept (first occurrences).
        matches: one entry per dropped document, in input order.
    """

    documents: Annotated[int, Field(ge=0)]
    kept: Annotated[int, Field(ge=0)]
    matches: tuple[DuplicateMatch, ...]

    @property
    def dropped(self) -> int:
        """How many documents were dropped."""
        return len(self.matches)

    def count(self, kind: Literal["exact", "near"]) -> int:
        """How many documents were dropped as duplicates of this kind."""
        return sum(1 for match in self.matches if match.kind == kind)

    def clusters(self) -> tuple[DuplicateCluster, ...]:
        """Dropped ids grouped by the kept id they duplicate, in order of first match."""
        groups: dict[str, list[str]] = {}
        for match in self.matches:
            groups.setdefault(match.kept_id, []).append(match.duplicate_id)
        return tuple(DuplicateCluster(kept_id=k, duplicate_ids=tuple(v)) for k, v in groups.items())


def _report(scan: Iterator[tuple[Document, DuplicateMatch | None]]) -> DuplicateReport:
    matches, documents = [], 0
    for _, match in scan:
        documents += 1
        if match is not None:
            matches.append(match)
    return DuplicateReport(
        documents=documents, kept=documents - len(matches), matches=tuple(matches)
    )


def _kept(
    scan: Iterator[tuple[Document, DuplicateMatch | None]], counts: collections.Counter[str]
) -> Iterator[Document]:
    for document, match in scan:
        if match is None:
            yield document
        else:
            counts[f"duplicates:{match.kind}"] += 1


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# ------------------------------------------------------------------ exact dedup


class ExactDeduplicatorConfig(Config):
    """Settings of :class:`ExactDeduplicator`.

    Attributes:
        ignore_case: compare case-folded text.
        ignore_punctuation: treat runs of punctuation like whitespace.
    """

    ignore_case: bool = True
    ignore_punctuation: bool = False


class ExactDeduplicator:
    """Drops documents whose normalised text equals an earlier document's.

    Memory: one 16-byte digest plus the id per *kept* document (about
    120 bytes + the id in CPython), held only while a call runs.

    Args:
        config: an :class:`ExactDeduplicatorConfig`; keyword arguments are
            shorthand for its fields.

    Examples:
        >>> from genarch import Document
        >>> dedup = ExactDeduplicator()
        >>> docs = [Document(id="a", text="Hello  world"), Document(id="b", text="hello world")]
        >>> [d.id for d in dedup.process(docs)]
        ['a']
        >>> dedup.find_duplicates(docs).clusters()[0].duplicate_ids
        ('b',)
    """

    def __init__(self, config: ExactDeduplicatorConfig | None = None, **fields: Any) -> None:
        self._config: ExactDeduplicatorConfig = ExactDeduplicatorConfig.resolve(config, fields)

    @property
    def config(self) -> ExactDeduplicatorConfig:
        """The frozen configuration."""
        return self._config

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Build from a config object or mapping (as saved in a pipeline).

        Raises:
            ConfigError: unknown or invalid fields.
        """
        return cls(ExactDeduplicatorConfig.coerce(config))

    def _scan(
        self, items: Iterable[Document], where: str
    ) -> Iterator[tuple[Document, DuplicateMatch | None]]:
        documents = checked_items(items, Document, where=where)
        ignore_case, ignore_punctuation = self._config.ignore_case, self._config.ignore_punctuation

        def scan() -> Iterator[tuple[Document, DuplicateMatch | None]]:
            seen: dict[bytes, str] = {}
            for position, document in enumerate(documents):
                key = _digest(
                    normalize_for_matching(
                        document.text,
                        ignore_case=ignore_case,
                        ignore_punctuation=ignore_punctuation,
                    )
                )
                kept_id = seen.get(key)
                if kept_id is None:
                    seen[key] = document.id
                    yield document, None
                else:
                    yield (
                        document,
                        DuplicateMatch(
                            duplicate_id=document.id,
                            kept_id=kept_id,
                            kind="exact",
                            similarity=1.0,
                            position=position,
                        ),
                    )

        return scan()

    def process(self, items: Iterable[Document]) -> Iterator[Document]:
        """Yield the first document of each group of exact duplicates, lazily.

        Raises:
            InvalidInputError: ``items`` is not an iterable of Documents.
        """
        return self.process_counting(items, collections.Counter())

    def process_counting(
        self, items: Iterable[Document], counts: collections.Counter[str]
    ) -> Iterator[Document]:
        """:meth:`process`, adding ``duplicates:exact`` to ``counts`` per dropped document."""
        return _kept(self._scan(items, "ExactDeduplicator.process"), counts)

    def find_duplicates(self, documents: Iterable[Document]) -> DuplicateReport:
        """Read every document and report which were dropped as duplicates of which."""
        return _report(self._scan(documents, "ExactDeduplicator.find_duplicates"))

    def __repr__(self) -> str:
        return f"ExactDeduplicator({self._config!r})"


# ------------------------------------------------------------------- near dedup


class NearDeduplicatorConfig(Config):
    """Settings of :class:`NearDeduplicator`.

    Attributes:
        threshold: Jaccard similarity of shingle sets at or above which a
            document is a near-duplicate of a kept one.
        num_perm: MinHash functions per signature; more is more precise
            (standard error of the estimate ``sqrt(J (1 - J) / num_perm)``) and slower.
        shingle: ``"char"`` n-grams (robust for short or noisy text) or ``"word"`` n-grams.
        shingle_size: n, in characters or words.
        bands: LSH bands; with ``rows``, overrides the choice derived from the threshold.
        rows: values per LSH band.
        false_negative_weight: when bands and rows are derived, how much missed
            candidates weigh against extra ones (which verification removes).
        ignore_punctuation: compare text with punctuation folded into spaces.
        exact_first: drop exact duplicates (same normalised text) before MinHash,
            counted as ``duplicates:exact``.
        batch_size: documents read ahead and hashed together (speed, not results).
        seed: seeds the MinHash functions.
    """

    threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    num_perm: Annotated[int, Field(ge=8, le=4096)] = 128
    shingle: Literal["char", "word"] = "char"
    shingle_size: Annotated[int, Field(ge=1, le=64)] = 5
    bands: Annotated[int, Field(ge=1)] | None = None
    rows: Annotated[int, Field(ge=1)] | None = None
    false_negative_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    ignore_punctuation: bool = True
    exact_first: bool = True
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    seed: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _bands_fit(self) -> Self:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither (to derive them)")
        if (
            self.bands is not None
            and self.rows is not None
            and self.bands * self.rows > self.num_perm
        ):
            raise ValueError(
                f"bands * rows ({self.bands} * {self.rows}) exceeds num_perm ({self.num_perm})"
            )
        return self


class _LshIndex:
    """Signatures and band buckets of the documents kept so far (one call's state)."""

    def __init__(self, num_perm: int, lsh: LshParameters, threshold: float) -> None:
        self._lsh = lsh
        self._threshold = threshold
        self._buckets: list[dict[int, int | list[int]]] = [{} for _ in range(lsh.bands)]
        self._signatures = np.empty((64, num_perm), dtype=np.uint32)
        self.ids: list[str] = []

    def band_keys(self, signatures: U32) -> list[list[int]]:
        """One 64-bit key per band per signature."""
        bands, rows = self._lsh.bands, self._lsh.rows
        cut = signatures[:, : bands * rows].reshape(len(signatures), bands, rows)
        keys = np.zeros((len(signatures), bands), dtype=np.uint64)
        for row in range(rows):
            keys *= _POLY
            keys += cut[:, :, row]
        result: list[list[int]] = _mix64(keys).tolist()
        return result

    def query(self, keys: list[int], signature: U32) -> tuple[int, float] | None:
        """The most similar kept document at or above the threshold, if any."""
        candidates: set[int] = set()
        for bucket, key in zip(self._buckets, keys, strict=True):
            found = bucket.get(key)
            if found is None:
                continue
            if isinstance(found, int):
                candidates.add(found)
            else:
                candidates.update(found)
        if not candidates:
            return None
        indices = np.fromiter(sorted(candidates), dtype=np.intp, count=len(candidates))
        equal = np.count_nonzero(self._signatures[indices] == signature, axis=1)
        best = int(np.argmax(equal))  # first maximum: the earliest kept document
        similarity = float(equal[best]) / signature.shape[0]
        if similarity < self._threshold:
            return None
        return int(indices[best]), similarity

    def insert(self, keys: list[int], signature: U32, document_id: str) -> None:
        index = len(self.ids)
        if index == len(self._signatures):
            self._signatures = np.concatenate([self._signatures, np.empty_like(self._signatures)])
        self._signatures[index] = signature
        self.ids.append(document_id)
        for bucket, key in zip(self._buckets, keys, strict=True):
            found = bucket.get(key)
            if found is None:
                bucket[key] = index
            elif isinstance(found, int):
                bucket[key] = [found, index]
            else:
                found.append(index)


class NearDeduplicator:
    """Drops documents whose shingle sets are near-duplicates of an earlier document's.

    Each document's MinHash signature is cut into LSH bands; kept documents
    sharing a band bucket are candidates, and the most similar candidate whose
    signature Jaccard estimate reaches ``threshold`` makes the document a
    duplicate. Bands and rows are derived from the threshold
    (:func:`lsh_parameters`) unless given.

    Memory, per *kept* document, only while a call runs: the signature
    (``4 * num_perm`` bytes), one bucket entry per band (about 100 bytes each
    in CPython) and, with ``exact_first``, a digest entry (about 120 bytes plus
    the id) — about 1.7 KB with the defaults (measured by
    ``benchmarks/bench_dedup.py``). Dropped documents cost nothing.

    Args:
        config: a :class:`NearDeduplicatorConfig`; keyword arguments are
            shorthand for its fields.

    Examples:
        >>> from genarch import Document
        >>> dedup = NearDeduplicator(threshold=0.7, seed=0)
        >>> docs = [
        ...     Document(id="a", text="The quick brown fox jumps over the lazy dog near the river."),
        ...     Document(id="b", text="The quick brown fox jumped over the lazy dog near the river."),
        ...     Document(id="c", text="An entirely different sentence about tokenisers."),
        ... ]
        >>> [d.id for d in dedup.process(docs)]
        ['a', 'c']
        >>> [(m.duplicate_id, m.kept_id) for m in dedup.find_duplicates(docs).matches]
        [('b', 'a')]
    """

    def __init__(self, config: NearDeduplicatorConfig | None = None, **fields: Any) -> None:
        self._config: NearDeduplicatorConfig = NearDeduplicatorConfig.resolve(config, fields)
        c = self._config
        self._hasher = MinHasher(c.num_perm, c.shingle, c.shingle_size, c.seed)
        if c.bands is not None and c.rows is not None:
            self._lsh = LshParameters(bands=c.bands, rows=c.rows)
        else:
            self._lsh = lsh_parameters(c.threshold, c.num_perm, c.false_negative_weight)

    @property
    def config(self) -> NearDeduplicatorConfig:
        """The frozen configuration."""
        return self._config

    @property
    def lsh(self) -> LshParameters:
        """The bands and rows in use."""
        return self._lsh

    @property
    def hasher(self) -> MinHasher:
        """The :class:`MinHasher` that computes this deduplicator's signatures."""
        return self._hasher

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Build from a config object or mapping (as saved in a pipeline).

        Raises:
            ConfigError: unknown or invalid fields.
        """
        return cls(NearDeduplicatorConfig.coerce(config))

    def _scan(
        self, items: Iterable[Document], where: str
    ) -> Iterator[tuple[Document, DuplicateMatch | None]]:
        documents = checked_items(items, Document, where=where)
        config, hasher, lsh = self._config, self._hasher, self._lsh

        def scan() -> Iterator[tuple[Document, DuplicateMatch | None]]:
            index = _LshIndex(config.num_perm, lsh, config.threshold)
            exact: dict[bytes, str] = {}
            position = 0
            while batch := list(itertools.islice(documents, config.batch_size)):
                texts = [
                    normalize_for_matching(d.text, ignore_punctuation=config.ignore_punctuation)
                    for d in batch
                ]
                signatures = hasher.signatures(texts)
                band_keys = index.band_keys(signatures)
                for document, text, signature, keys in zip(
                    batch, texts, signatures, band_keys, strict=True
                ):
                    match = None
                    digest = _digest(text) if config.exact_first or not text else b""
                    kept_id = exact.get(digest) if digest else None
                    if kept_id is not None:
                        match = DuplicateMatch(
                            duplicate_id=document.id,
                            kept_id=kept_id,
                            kind="exact",
                            similarity=1.0,
                            position=position,
                        )
                    elif text:  # texts without shingles only take part in exact matching
                        found = index.query(keys, signature)
                        if found is not None:
                            match = DuplicateMatch(
                                duplicate_id=document.id,
                                kept_id=index.ids[found[0]],
                                kind="near",
                                similarity=found[1],
                                position=position,
                            )
                        else:
                            index.insert(keys, signature, document.id)
                    if match is None and digest:
                        exact[digest] = document.id
                    position += 1
                    yield document, match

        return scan()

    def process(self, items: Iterable[Document]) -> Iterator[Document]:
        """Yield documents that are not (near-)duplicates of an earlier one, lazily.

        Reads ``batch_size`` documents ahead to hash them together.

        Raises:
            InvalidInputError: ``items`` is not an iterable of Documents.
        """
        return self.process_counting(items, collections.Counter())

    def process_counting(
        self, items: Iterable[Document], counts: collections.Counter[str]
    ) -> Iterator[Document]:
        """:meth:`process`, counting ``duplicates:exact`` and ``duplicates:near`` in ``counts``."""
        return _kept(self._scan(items, "NearDeduplicator.process"), counts)

    def find_duplicates(self, documents: Iterable[Document]) -> DuplicateReport:
        """Read every document and report which were dropped as duplicates of which.

        Examples:
            >>> from genarch import Document
            >>> docs = [Document(id=str(i), text="same words here") for i in range(3)]
            >>> report = NearDeduplicator().find_duplicates(docs)
            >>> report.kept, report.count("exact"), report.clusters()[0].duplicate_ids
            (1, 2, ('1', '2'))
        """
        return _report(self._scan(documents, "NearDeduplicator.find_duplicates"))

    def __repr__(self) -> str:
        return f"NearDeduplicator({self._config!r})"
