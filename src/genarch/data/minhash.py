"""MinHash signatures and LSH banding: the maths behind near-duplicate detection.

* :class:`MinHasher` — MinHash signatures of character or word n-gram
  shingles [Broder 1997]. Vectorised with numpy: each shingle is hashed once
  to a 32-bit key (a polynomial rolling hash over code points, finalised with
  SplitMix64), then all ``num_perm`` hash functions
  ``((a * key + b) mod 2**64) >> 32`` (multiply-add-shift, 2-universal for
  32-bit keys [Dietzfelbinger 1996]) are applied in one array operation, and
  ``minimum.reduceat`` takes the minima per document.
* :class:`LshParameters` and :func:`lsh_parameters` — how a signature is cut
  into bands [Indyk & Motwani 1998; Leskovec, Rajaraman & Ullman, *Mining of
  Massive Datasets*, ch. 3], chosen for a Jaccard threshold.
* :class:`LshIndex` — the band buckets and signatures of the documents kept so
  far, queried for the most similar candidate.

The deduplication stages that use them are in :mod:`genarch.data.dedup`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from genarch.errors import ConfigError, InvalidInputError
from genarch.schemas import Record
from genarch.validation import describe

__all__ = ["LshIndex", "LshParameters", "MinHasher", "lsh_parameters"]

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]

_MAX_KEY = np.uint32(0xFFFFFFFF)  # signature value of a document without shingles
_POLY = np.uint64(0x100000001B3)  # odd multiplier of the rolling polynomial hash
_SEGMENT_CHARS = 1 << 14  # a long text is shingled in segments of this many characters
_BLOCK_KEYS = 1 << 13  # shingle keys hashed per numpy block: num_perm * this * 8 bytes temporary


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


# ------------------------------------------------------------------ LSH index


class LshIndex:
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
