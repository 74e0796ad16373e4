"""Exact and near-duplicate removal for documents.

Two :class:`~genarch.protocols.DataProcessor` stages keep the *first*
occurrence of each document and drop later copies:

* :class:`ExactDeduplicator` — a 128-bit BLAKE2b digest of the normalised
  text (case, Unicode form and whitespace folded; punctuation optionally).
* :class:`NearDeduplicator` — MinHash signatures of character or word
  n-gram shingles, bucketed by LSH banding (the maths is in
  :mod:`genarch.data.minhash`), every candidate verified with the Jaccard
  estimate of the two signatures, so a chance bucket collision never drops a
  document.

Both are lazy streams: the only state is what one call has kept (digests,
signatures and LSH buckets of the kept documents), dropped when the call ends.
:meth:`NearDeduplicator.find_duplicates` returns a typed
:class:`DuplicateReport` (which later ids were dropped as duplicates of which
kept id); ``process_counting`` feeds the pipeline trace with
``duplicates:exact`` and ``duplicates:near``.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from genarch.configured import Configured
from genarch.data.minhash import LshIndex, LshParameters, MinHasher, lsh_parameters
from genarch.schemas import Config, Document, Record
from genarch.validation import checked_items

__all__ = [
    "DuplicateCluster",
    "DuplicateMatch",
    "DuplicateReport",
    "ExactDeduplicator",
    "ExactDeduplicatorConfig",
    "NearDeduplicator",
    "NearDeduplicatorConfig",
    "normalize_for_matching",
]

_NON_WORD = re.compile(r"[\W_]+")
_SPACES = re.compile(r"\s+")


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


class ExactDeduplicator(Configured[ExactDeduplicatorConfig]):
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

    def _scan(
        self, items: Iterable[Document], where: str
    ) -> Iterator[tuple[Document, DuplicateMatch | None]]:
        documents = checked_items(items, Document, where=where)
        ignore_case, ignore_punctuation = self.config.ignore_case, self.config.ignore_punctuation

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


class NearDeduplicator(Configured[NearDeduplicatorConfig]):
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

    def __init__(
        self, config: NearDeduplicatorConfig | Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        Configured.__init__(self, config, **fields)
        c = self.config
        self._hasher = MinHasher(c.num_perm, c.shingle, c.shingle_size, c.seed)
        if c.bands is not None and c.rows is not None:
            self._lsh = LshParameters(bands=c.bands, rows=c.rows)
        else:
            self._lsh = lsh_parameters(c.threshold, c.num_perm, c.false_negative_weight)

    @property
    def lsh(self) -> LshParameters:
        """The bands and rows in use."""
        return self._lsh

    @property
    def hasher(self) -> MinHasher:
        """The :class:`MinHasher` that computes this deduplicator's signatures."""
        return self._hasher

    def _scan(
        self, items: Iterable[Document], where: str
    ) -> Iterator[tuple[Document, DuplicateMatch | None]]:
        documents = checked_items(items, Document, where=where)
        config, hasher, lsh = self.config, self._hasher, self._lsh

        def scan() -> Iterator[tuple[Document, DuplicateMatch | None]]:
            index = LshIndex(config.num_perm, lsh, config.threshold)
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
