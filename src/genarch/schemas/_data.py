"""Records of the data layer: documents, their chunks, and search hits."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from genarch.schemas._base import Metadata, Record

__all__ = ["Chunk", "Document", "Hit", "ScoredChunk"]


class Document(Record):
    """A source text with a stable identifier.

    Examples:
        >>> Document(id="tutorial", text="Python is easy to learn.").id
        'tutorial'
    """

    id: Annotated[str, Field(min_length=1)]
    text: str
    metadata: Metadata = Field(default_factory=dict)


class Chunk(Record):
    """A contiguous span of a :class:`Document`, as used for retrieval and citations.

    ``start`` and ``end`` are character offsets into the source document's text,
    so ``document.text[chunk.start:chunk.end]`` is the text the chunk came from.
    """

    id: Annotated[str, Field(min_length=1)]
    document_id: Annotated[str, Field(min_length=1)]
    text: str
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _span_is_ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) must not be before start ({self.start})")
        return self


class ScoredChunk(Record):
    """A chunk returned by a retriever with its relevance score (higher is better)."""

    chunk: Chunk
    score: float


class Hit(Record):
    """One vector-store search result: the stored id, its score and its metadata."""

    id: str
    score: float
    metadata: Metadata = Field(default_factory=dict)
