"""Corpora that ship offline, as :class:`~genarch.schemas.Document` records."""

from __future__ import annotations

__all__ = ["python_docs"]

from genarch.schemas import Document


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
