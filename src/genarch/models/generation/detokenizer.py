"""Token ids to text as they arrive, for streaming: :class:`IncrementalDetokenizer`."""

from __future__ import annotations

from collections.abc import Sequence

from genarch.protocols import Tokenizer

__all__ = ["IncrementalDetokenizer"]

_REPLACEMENT = "\ufffd"  # what a byte-level tokenizer decodes an incomplete character to


class IncrementalDetokenizer:
    """Turns token ids into text as they arrive, for streaming.

    :meth:`ready` returns only text that can no longer change: it holds back a
    trailing incomplete UTF-8 character (which a byte-level tokenizer decodes
    to U+FFFD until its last byte arrives) and any ending that could be the
    start of a stop string. The pieces it returns, followed by :meth:`flush`,
    concatenate to :attr:`text`. It assumes, as byte-level BPE tokenizers
    guarantee, that decoding more tokens only extends the text decoded so far
    (apart from such an incomplete last character).

    Args:
        tokenizer: anything with ``decode(ids) -> str``.
        stop: strings that end the text; the text is cut before the first one.

    Examples:
        >>> class Bytes:
        ...     vocab_size = 256
        ...     def encode(self, text): return list(text.encode())
        ...     def decode(self, ids): return bytes(ids).decode(errors="replace")
        >>> detok = IncrementalDetokenizer(Bytes(), stop=["!"])
        >>> pieces = []
        >>> for byte in "né!".encode():
        ...     stopped = detok.push(byte)
        ...     pieces.append(detok.ready())
        >>> pieces, stopped, detok.text
        (['n', '', 'é', ''], True, 'né')
    """

    def __init__(self, tokenizer: Tokenizer, stop: Sequence[str] = ()) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(s for s in stop if s)
        self._ids: list[int] = []
        self._decoded: str | None = ""
        self._cut: int | None = None  # where the first stop string starts, once seen
        self._emitted = 0

    def push(self, token_id: int) -> bool:
        """Add one token; return True if the text now contains a stop string."""
        if self._cut is not None:
            return True
        self._ids.append(token_id)
        self._decoded = None
        if self._stop:
            text = self._full()
            found = [i for i in (text.find(s) for s in self._stop) if i >= 0]
            if found:
                self._cut = min(found)
                return True
        return False

    def _full(self) -> str:
        if self._decoded is None:
            self._decoded = self._tokenizer.decode(self._ids)
        return self._decoded

    @property
    def stopped(self) -> bool:
        """Whether a stop string has appeared."""
        return self._cut is not None

    @property
    def text(self) -> str:
        """All text so far, cut before the first stop string."""
        return self._full()[: self._cut]

    def ready(self) -> str:
        """New text that is certain not to change, since the last call."""
        text = self.text
        if self._cut is not None:
            return self.flush()
        end = len(text)
        while end > self._emitted and text[end - 1] == _REPLACEMENT:
            end -= 1
        hold = 0
        for stop in self._stop:  # the longest ending that a stop string starts with
            for size in range(min(len(stop) - 1, end), hold, -1):
                if text.endswith(stop[:size], 0, end):
                    hold = size
                    break
        end -= hold
        if end <= self._emitted:
            return ""
        piece, self._emitted = text[self._emitted : end], end
        return piece

    def flush(self) -> str:
        """Everything not yet returned (call once no more tokens will come)."""
        text = self.text
        piece, self._emitted = text[self._emitted :], max(self._emitted, len(text))
        return piece
