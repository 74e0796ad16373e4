"""Corpora that ship offline, loaders for your own, and deterministic splits.

Everything here produces :class:`~genarch.schemas.Document` records; tokenised
corpora live in :mod:`genarch.data.token_corpus`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from genarch.errors import InvalidInputError, NotFoundError
from genarch.schemas import Document, Record

if TYPE_CHECKING:
    from genarch.pipeline import Pipeline

__all__ = ["Split", "load_text_files", "python_docs", "quickstart_corpus", "train_validation_split"]


def python_docs() -> list[Document]:
    """Python's own documentation topics (``pydoc_data.topics``), one document per topic.

    About 80 documents and 465 KB of English technical prose, present in every
    CPython installation — a real corpus that needs no download. Documents are
    sorted by topic name, so the order is the same everywhere.

    Examples:
        >>> docs = python_docs()
        >>> docs[0].metadata["source"]
        'pydoc_data.topics'
    """
    from pydoc_data.topics import topics

    return [
        Document(id=name, text=text, metadata={"source": "pydoc_data.topics", "topic": name})
        for name, text in sorted(topics.items())
    ]


def quickstart_corpus() -> Pipeline:
    """The pipeline ``genarch quickstart`` prepares its documents with: clean, keep the
    good ones, drop near duplicates, redact PII. The model trains on what comes out and the
    assistant answers from it.

    Indentation is kept (``TextCleaner(keep_indentation=True)``): answer selection reads a
    signature as the heading of the block indented under it
    (:attr:`~genarch.orchestration.ExtractiveConfig.heading_scope`).

    Example:
        >>> quickstart_corpus().names
        ('clean', 'quality', 'dedup', 'redact')
    """
    from genarch.data.dedup import NearDeduplicator
    from genarch.data.pii_redaction import PiiRedactor
    from genarch.data.quality import QualityFilter
    from genarch.data.text import TextCleaner
    from genarch.pipeline import Pipeline

    return Pipeline(
        [
            ("clean", TextCleaner(keep_indentation=True)),
            ("quality", QualityFilter()),
            ("dedup", NearDeduplicator()),
            ("redact", PiiRedactor(mode="placeholder")),
        ]
    )


def load_text_files(
    directory: str | os.PathLike[str],
    *,
    pattern: str = "**/*.txt",
    encoding: str = "utf-8",
    errors: str = "strict",
    max_bytes: int | None = 64 * 1024 * 1024,
) -> Iterator[Document]:
    """Stream every matching file under ``directory`` as a document, in sorted path order.

    The document id is the file's path relative to ``directory`` (POSIX style).

    Args:
        pattern: a glob relative to ``directory``.
        encoding: the files' text encoding.
        errors: ``"strict"`` refuses undecodable bytes; ``"replace"`` substitutes
            U+FFFD for them (the count is kept in ``metadata["replaced_bytes"]``).
        max_bytes: refuse files larger than this (``None``: no limit).

    Raises:
        NotFoundError: ``directory`` does not exist.
        InvalidInputError: a file is not valid in ``encoding`` (with ``errors="strict"``)
            or is larger than ``max_bytes``; the message names the file and the byte offset.

    Examples:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (root / "a.txt").write_text("first")
        >>> [d.id for d in load_text_files(root)]
        ['a.txt']
    """
    root = Path(directory)
    if not root.is_dir():
        raise NotFoundError(f"no directory {root} to load text files from")
    if errors not in ("strict", "replace"):
        raise InvalidInputError(f"errors must be 'strict' or 'replace', got {errors!r}")
    for path in sorted(p for p in root.glob(pattern) if p.is_file()):
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise InvalidInputError(
                f"{path} is {size:,} bytes, more than max_bytes={max_bytes:,}; "
                "split it or raise the limit"
            )
        data = path.read_bytes()
        try:
            text = data.decode(encoding)
            replaced = 0
        except UnicodeDecodeError as error:
            if errors == "strict":
                raise InvalidInputError(
                    f"{path} is not valid {encoding}: byte {error.start} ({data[error.start : error.start + 1]!r}) "
                    f"cannot be decoded. Convert the file, or pass errors='replace'."
                ) from None
            text = data.decode(encoding, errors="replace")
            replaced = text.count("\ufffd") - data.decode(encoding, errors="ignore").count("\ufffd")
        metadata: dict[str, str | int | float | bool | None] = {"source": str(path), "bytes": size}
        if replaced:
            metadata["replaced_bytes"] = replaced
        yield Document(id=path.relative_to(root).as_posix(), text=text, metadata=metadata)


class Split(Record):
    """A train/validation split of documents."""

    train: tuple[Document, ...]
    validation: tuple[Document, ...]


def train_validation_split(
    documents: Sequence[Document], *, validation_fraction: float = 0.1, seed: int = 0
) -> Split:
    """Split documents deterministically by a hash of their id.

    A document's side depends only on its id and the seed — not on the order of
    the documents or on which others are present — so adding documents never
    moves existing ones between train and validation (no leakage over time).

    Raises:
        InvalidInputError: the fraction is outside [0, 1), or ids repeat.

    Examples:
        >>> split = train_validation_split(python_docs(), validation_fraction=0.2)
        >>> len(split.train) + len(split.validation) == len(python_docs())
        True
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise InvalidInputError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        raise InvalidInputError("document ids must be unique to split by id")
    train: list[Document] = []
    validation: list[Document] = []
    for document in documents:
        digest = hashlib.sha256(f"{seed}:{document.id}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        (validation if position < validation_fraction else train).append(document)
    return Split(train=tuple(train), validation=tuple(validation))
