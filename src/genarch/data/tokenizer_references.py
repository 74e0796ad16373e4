"""Naming a tokeniser in a config, and loading any genarch tokeniser back.

A pipeline config cannot hold a tokeniser object; it holds a
:data:`TokenizerReference` — a :class:`~genarch.data.byte_tokenizer.ByteTokenizerConfig`,
a standard encoding by name
(:class:`~genarch.data.tiktoken_tokenizer.StandardEncodingReference`) or the
directory a tokeniser was saved to
(:class:`~genarch.data.tiktoken_tokenizer.SavedTokenizerReference`).
:func:`load_tokenizer` turns a reference, or a saved directory, back into a
tokeniser.
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field

from genarch.data._tokenizer_common import open_saved_tokenizer
from genarch.data.byte_tokenizer import ByteTokenizer, ByteTokenizerConfig
from genarch.data.tiktoken_tokenizer import (
    SavedTokenizerReference,
    StandardEncodingReference,
    TiktokenTokenizer,
)
from genarch.errors import IntegrityError, InvalidInputError
from genarch.protocols import PathLike
from genarch.validation import describe

__all__ = ["TokenizerReference", "load_tokenizer"]

TokenizerReference = Annotated[
    ByteTokenizerConfig | StandardEncodingReference | SavedTokenizerReference,
    Field(discriminator="kind"),
]
"""How a pipeline config names a tokeniser so that it can be rebuilt."""


def load_tokenizer(
    source: PathLike | ByteTokenizerConfig | StandardEncodingReference | SavedTokenizerReference,
) -> TiktokenTokenizer | ByteTokenizer:
    """Load any genarch tokeniser from a saved directory or a reference.

    Raises:
        NotFoundError: nothing saved there, or a standard encoding's file is missing.
        IntegrityError: the saved files are corrupt, or differ from what the
            reference pins (``content_sha256``: every file; ``vocab_sha256``:
            the vocabulary).

    Examples:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp() + "/bytes"
        >>> ByteTokenizer(special_tokens=("<|endoftext|>",)).save(folder)
        >>> load_tokenizer(folder).vocab_size
        257
    """
    if isinstance(source, ByteTokenizerConfig):
        return ByteTokenizer(source)
    if isinstance(source, StandardEncodingReference):
        return TiktokenTokenizer.standard(
            source.name, path=source.path, allowed_special=source.allowed_special
        )
    if isinstance(source, SavedTokenizerReference):
        tokenizer = load_tokenizer(source.path)
        loaded = tokenizer.reference
        found = loaded if isinstance(loaded, SavedTokenizerReference) else None
        for pin, what in (("content_sha256", "files"), ("vocab_sha256", "vocabulary")):
            expected = getattr(source, pin)
            actual = getattr(found, pin) if found is not None else None
            if expected is not None and actual != expected:
                raise IntegrityError(
                    f"the tokenizer at {source.path!r} has changed since the config was written "
                    f"(SHA-256 of its {what} {actual}, expected {expected})"
                )
        return tokenizer
    if not isinstance(source, str | os.PathLike):
        raise InvalidInputError(
            f"load_tokenizer expected a directory or a tokenizer reference, got {describe(source)}"
        )
    saved = open_saved_tokenizer(source, None, "load_tokenizer")
    kind = saved.header.get("kind")
    if kind == "bytes":
        return ByteTokenizer.load(source)
    if kind == "tiktoken":
        return TiktokenTokenizer.load(source)
    raise IntegrityError(
        f"load_tokenizer: {str(saved.root)!r} holds an unknown tokenizer kind {kind!r}"
    )
