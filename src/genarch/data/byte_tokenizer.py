"""The byte tokeniser: UTF-8 bytes as token ids 0-255, plus optional special tokens.

:class:`ByteTokenizer` needs no training and no vocabulary file, and every
string round-trips. Its config is also how a pipeline config names it (see
:data:`~genarch.data.tokenizer_references.TokenizerReference`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, Self

import regex
from pydantic import Field, model_validator

from genarch.configured import Configured
from genarch.data._tokenizer_common import (
    TOKENIZER_FILE,
    TOKENIZER_FORMAT,
    allowed_specials,
    as_id_list,
    bad_ids_error,
    not_text_error,
    open_saved_tokenizer,
    surrogates_error,
)
from genarch.persistence import reading, save_component
from genarch.protocols import PathLike
from genarch.schemas import Config

__all__ = ["ByteTokenizer", "ByteTokenizerConfig"]


class ByteTokenizerConfig(Config):
    """Settings of :class:`ByteTokenizer` (also its reference in a pipeline config).

    Attributes:
        special_tokens: control tokens, given ids 256, 257, ... in order.
        allowed_special: which of them ``encode`` reads from text by default.
    """

    kind: Literal["bytes"] = "bytes"
    special_tokens: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    allowed_special: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError(f"special_tokens must be distinct, got {self.special_tokens!r}")
        unknown = set(self.allowed_special) - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special names unknown special tokens {sorted(unknown)}")
        return self


class ByteTokenizer(Configured[ByteTokenizerConfig]):
    """UTF-8 bytes as tokens (ids 0-255), plus optional special tokens from id 256.

    Needs no vocabulary file and round-trips every string; sequences are about
    four times longer than with a trained BPE vocabulary.

    Args:
        config: a :class:`ByteTokenizerConfig`; keyword arguments are shorthand
            for its fields.

    Raises:
        ConfigError: both a config and fields, or invalid fields.

    Examples:
        >>> tokenizer = ByteTokenizer(special_tokens=("<|endoftext|>",))
        >>> tokenizer.encode("hé")
        [104, 195, 169]
        >>> tokenizer.encode("a<|endoftext|>", allowed_special="all")
        [97, 256]
        >>> tokenizer.decode([104, 195, 169, 256])
        'hé<|endoftext|>'
    """

    def __init__(
        self, config: ByteTokenizerConfig | Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        Configured.__init__(self, config, **fields)
        self._specials = {token: 256 + i for i, token in enumerate(self.config.special_tokens)}
        self._by_id = {i: token.encode("utf-8") for token, i in self._specials.items()}
        self._allowed = frozenset(self.config.allowed_special)
        self._splitters: dict[frozenset[str], regex.Pattern[str]] = {}

    @property
    def reference(self) -> ByteTokenizerConfig:
        """How a config names this tokeniser: its own config."""
        return self.config

    @property
    def vocab_size(self) -> int:
        """256 plus the number of special tokens."""
        return 256 + len(self._specials)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Every special token and its id (a copy)."""
        return dict(self._specials)

    @property
    def allowed_special(self) -> frozenset[str]:
        """The special tokens ``encode`` reads from text by default."""
        return self._allowed

    def encode(
        self, text: str, *, allowed_special: Iterable[str] | Literal["all"] | None = None
    ) -> list[int]:
        """The UTF-8 bytes of ``text``, with allowed special tokens as their ids.

        Raises:
            InvalidInputError: ``text`` is not a str, or contains a lone surrogate.
        """
        if not isinstance(text, str):
            raise not_text_error(text, "ByteTokenizer.encode")
        allowed = (
            self._allowed
            if allowed_special is None
            else allowed_specials(allowed_special, self._specials, "ByteTokenizer.encode")
        )
        try:
            if not allowed:
                return list(text.encode("utf-8"))
            splitter = self._splitters.get(allowed)
            if splitter is None:  # a cache of compiled patterns, not behaviour-changing state
                alternatives = sorted(allowed, key=len, reverse=True)
                splitter = regex.compile("(" + "|".join(map(regex.escape, alternatives)) + ")")
                self._splitters[allowed] = splitter
            ids: list[int] = []
            for index, piece in enumerate(splitter.split(text)):
                if index % 2:
                    ids.append(self._specials[piece])
                else:
                    ids.extend(piece.encode("utf-8"))
            return ids
        except UnicodeEncodeError:
            raise surrogates_error("ByteTokenizer.encode", text) from None

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of ``token_ids``; bytes that do not form UTF-8 become U+FFFD.

        Raises:
            InvalidInputError: an id is not an int in ``range(vocab_size)``.
        """
        token_ids = as_id_list(token_ids, self.vocab_size)
        try:
            data = bytes(token_ids)
        except (TypeError, ValueError):
            ids = list(token_ids)
            parts = []
            for token_id in ids:
                if not isinstance(token_id, int):
                    raise bad_ids_error(ids, self.vocab_size) from None
                if 0 <= token_id < 256:
                    parts.append(bytes((token_id,)))
                elif token_id in self._by_id:
                    parts.append(self._by_id[token_id])
                else:
                    raise bad_ids_error(ids, self.vocab_size) from None
            data = b"".join(parts)
        return data.decode("utf-8", errors="replace")

    def save(self, directory: PathLike) -> None:
        """Write ``tokenizer.json`` (the config's fields), atomically."""
        save_component(
            directory,
            TOKENIZER_FORMAT,
            header=self.config.model_dump(mode="json"),
            header_file=TOKENIZER_FILE,
        )

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load a tokenizer written by :meth:`save`.

        Raises:
            NotFoundError: ``directory`` holds no saved tokenizer.
            IntegrityError: the file is corrupt or of another kind of tokenizer.
        """
        saved = open_saved_tokenizer(directory, "bytes", "ByteTokenizer.load")
        fields = {name: value for name, value in saved.header.items() if name != "format"}
        with reading(saved.kind, saved.root):
            return cls(ByteTokenizerConfig.parse(fields))
