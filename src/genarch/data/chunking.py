"""Token-aware chunking for retrieval, with exact character offsets for citations.

:class:`Chunker` cuts each document into chunks of at most ``max_tokens``
tokens that overlap by up to ``overlap_tokens``. It prefers to cut between
paragraphs, then between sentences, then between lines, then between words,
and only cuts inside a word when a single word is longer than a chunk. Each
chunk keeps its source document id and the ``start``/``end`` character offsets
of its text in that document, so ``document.text[chunk.start:chunk.end] ==
chunk.text`` always holds — which is what makes citations checkable.

Token counts come from a :class:`~genarch.protocols.Tokenizer` you pass in
(the one your model uses). Without one, the chunker counts *word pieces* —
runs of letters/digits and single punctuation marks — which tracks BPE token
counts of English prose closely but not exactly; pass the real tokenizer when
the budget matters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from genarch.configured import Configured
from genarch.protocols import Tokenizer
from genarch.schemas import Chunk, Config, Document
from genarch.validation import checked_items, require_instance, require_text

__all__ = ["Chunker", "ChunkerConfig", "count_word_pieces"]

_WORD_PIECE = re.compile(r"\w+|[^\w\s]")
# Cut points, from most to least preferred; each regex matches the gap to cut at.
_SEPARATORS = (
    re.compile(r"\n\s*\n\s*"),  # paragraph break
    re.compile(r"(?<=[.!?:;])\s+"),  # sentence end
    re.compile(r"\n\s*"),  # line break
    re.compile(r"\s+"),  # between words
)


# A prefix of this many characters per token of budget is counted first; a span
# whose prefix is already over budget cannot fit (tokens are rarely this long).
_PROBE_CHARACTERS_PER_TOKEN = 64


def count_word_pieces(text: str) -> int:
    """Runs of letters/digits plus punctuation marks: the chunker's default token count.

    Examples:
        >>> count_word_pieces("Hello, world!")
        4
    """
    return len(_WORD_PIECE.findall(text))


class ChunkerConfig(Config):
    """Settings of :class:`Chunker`.

    Attributes:
        max_tokens: the most tokens a chunk may hold.
        overlap_tokens: up to this many tokens at the end of a chunk are repeated
            at the start of the next, so a fact cut in two is whole in one chunk.
        min_fill: a chunk at least this full is closed at a paragraph break rather
            than filled to the limit with the start of the next paragraph.
    """

    max_tokens: Annotated[int, Field(ge=1)] = 256
    overlap_tokens: Annotated[int, Field(ge=0)] = 32
    min_fill: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5

    @model_validator(mode="after")
    def _overlap_fits(self) -> Self:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than "
                f"max_tokens ({self.max_tokens})"
            )
        return self


class _Piece:
    """A span of the document with its token count; ``paragraph`` if a paragraph starts here."""

    __slots__ = ("end", "paragraph", "start", "tokens")

    def __init__(self, start: int, end: int, tokens: int, paragraph: bool) -> None:
        self.start, self.end, self.tokens, self.paragraph = start, end, tokens, paragraph


class Chunker(Configured[ChunkerConfig]):
    """Cuts documents into overlapping, token-bounded chunks with character offsets.

    Args:
        config: sizes (see :class:`ChunkerConfig`); keyword fields are shorthand.
        tokenizer: counts tokens; default: :func:`count_word_pieces`.
            ``Chunker.from_config`` uses the default; pass ``tokenizer=`` yourself.

    Examples:
        >>> chunker = Chunker(max_tokens=8, overlap_tokens=0)
        >>> doc = Document(id="d", text="One two three.\\n\\nFour five six seven. Eight nine ten eleven twelve.")
        >>> [(c.text, c.start) for c in chunker.process([doc])]
        [('One two three.', 0), ('Four five six seven.', 16), ('Eight nine ten eleven twelve.', 37)]
    """

    def __init__(
        self,
        config: ChunkerConfig | Mapping[str, Any] | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        self.tokenizer = tokenizer
        self._count: Callable[[str], int] = (
            count_word_pieces if tokenizer is None else lambda text: len(tokenizer.encode(text))
        )

    # ----------------------------------------------------------------- pieces

    def _pieces(
        self, text: str, start: int, end: int, level: int, paragraph: bool
    ) -> Iterator[_Piece]:
        """Split ``text[start:end]`` at the most preferred separator until every piece fits."""
        tokens = self._fitting_count(text, start, end)
        if tokens is not None:
            yield _Piece(start, end, tokens, paragraph)
            return
        if level == len(_SEPARATORS):
            yield from self._split_long_word(text, start, end, paragraph)
            return
        position, first = start, True
        for gap in _SEPARATORS[level].finditer(text, start, end):
            if gap.start() > position:
                yield from self._pieces(text, position, gap.start(), level + 1, paragraph and first)
                first = False
            position = gap.end()
        if position < end:
            yield from self._pieces(text, position, end, level + 1, paragraph and first)

    def _split_long_word(
        self, text: str, start: int, end: int, paragraph: bool
    ) -> Iterator[_Piece]:
        """A single word longer than a chunk: cut it at the longest prefix that fits.

        The search gallops (prefixes of 2, 4, 8, ... times the chunk's token
        budget in characters) before it bisects, so it never counts much more
        than one chunk's worth of text: time stays linear in the word's length
        however long the word is.
        """
        limit = self.config.max_tokens
        while start < end:
            low, high = start + 1, end  # the answer is in [low, high]
            probe = min(end, start + 2 * limit)
            while probe < end and self._count(text[start:probe]) <= limit:
                low, probe = probe, min(end, start + 2 * (probe - start))
            high = probe
            while low < high:  # binary search for the longest fitting prefix
                middle = (low + high + 1) // 2
                if self._count(text[start:middle]) <= limit:
                    low = middle
                else:
                    high = middle - 1
            yield _Piece(start, low, self._count(text[start:low]), paragraph)
            start, paragraph = low, False

    def _fitting_count(self, text: str, start: int, end: int) -> int | None:
        """The token count of ``text[start:end]`` if it fits in a chunk, else None.

        A long span is first counted by a prefix of a bounded length: when that
        alone is over budget, the span does not fit and is never counted whole,
        so no span much longer than a chunk is ever tokenised (a tokeniser may
        be superlinear on one long word; the chunker must not multiply that).
        """
        limit = self.config.max_tokens
        probe = start + _PROBE_CHARACTERS_PER_TOKEN * limit
        if probe < end and self._count(text[start:probe]) > limit:
            return None
        tokens = self._count(text[start:end])
        return tokens if tokens <= limit else None

    def _units(self, text: str) -> list[_Piece]:
        pieces: list[_Piece] = []
        position = 0
        for gap in _SEPARATORS[0].finditer(text):
            if gap.start() > position:
                pieces.extend(self._pieces(text, position, gap.start(), 1, True))
            position = gap.end()
        stripped_end = len(text.rstrip())
        if position < stripped_end:
            pieces.extend(self._pieces(text, position, stripped_end, 1, True))
        return [p for p in pieces if text[p.start : p.end].strip()]

    # ------------------------------------------------------------------ chunks

    def chunk(self, document: Document) -> list[Chunk]:
        """The chunks of one document, in order.

        Raises:
            InvalidInputError: ``document`` is not a Document, or its text holds
                a lone surrogate (the position is named), as the tokenisers refuse.
        """
        document = require_instance(document, Document, "Chunker.chunk")
        require_text(document.text, f"Chunker.chunk (document {document.id!r})")
        text, config = document.text, self.config
        units = self._units(text)
        chunks: list[Chunk] = []
        first = 0
        while first < len(units):
            last, total = first, units[first].tokens
            while last + 1 < len(units):
                following = units[last + 1]
                if total + following.tokens > config.max_tokens:
                    break
                if following.paragraph and total >= config.min_fill * config.max_tokens:
                    break
                last, total = last + 1, total + following.tokens
            start, end = units[first].start, units[last].end
            chunks.append(
                Chunk(
                    id=f"{document.id}#{len(chunks)}",
                    document_id=document.id,
                    text=text[start:end],
                    start=start,
                    end=end,
                    metadata=document.metadata,
                )
            )
            if last + 1 >= len(units):
                break
            # Step back over trailing units that fit in the overlap budget (always advance).
            following_first, overlap = last + 1, 0
            while following_first - 1 > first:
                candidate = units[following_first - 1].tokens
                if overlap + candidate > config.overlap_tokens:
                    break
                overlap += candidate
                following_first -= 1
            first = following_first
        return chunks

    def process(self, items: Iterable[Document]) -> Iterator[Chunk]:
        """Yield the chunks of every document, document by document.

        Raises:
            InvalidInputError: an item is not a Document, or its text holds a lone surrogate.
        """
        for document in checked_items(items, Document, where="Chunker.process"):
            yield from self.chunk(document)
