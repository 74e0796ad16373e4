"""The tokenising pipeline stage: ``Document -> TokenizedDocument``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field

from genarch._io import atomic_directory
from genarch.data.tokenizers import (
    TokenizerReference,
    _allowed,
    load_tokenizer,
)
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.protocols import PathLike
from genarch.protocols import Tokenizer as TokenizerProtocol
from genarch.schemas import Config, Document, Metadata, Record
from genarch.validation import checked_items, describe

__all__ = ["Tokenize", "TokenizeConfig", "TokenizedDocument"]


class TokenizedDocument(Record):
    """A document as token ids, keeping its id and metadata for lineage."""

    document_id: Annotated[str, Field(min_length=1)]
    token_ids: tuple[int, ...]
    metadata: Metadata = Field(default_factory=dict)


class TokenizeConfig(Config):
    """Settings of :class:`Tokenize`.

    Attributes:
        tokenizer: how to rebuild the tokeniser: a :class:`ByteTokenizerConfig`,
            a standard encoding by name, or the directory of a saved one.
        allowed_special: special tokens read from document text (default none).
        append_special: a special token appended to every document, e.g.
            ``"<|endoftext|>"`` as a separator before packing.
    """

    tokenizer: TokenizerReference
    allowed_special: tuple[str, ...] = ()
    append_special: str | None = None


class Tokenize:
    """Pipeline stage: each :class:`~genarch.schemas.Document` to a :class:`TokenizedDocument`.

    Saving pipelines: the stage's config names its tokeniser by *reference*,
    not by value — a :class:`ByteTokenizerConfig`, a standard encoding name, or
    the directory a tokeniser was saved to (with the vocabulary's SHA-256, so a
    changed file is caught). ``Tokenize.from_config`` rebuilds the tokeniser
    from that. A tokeniser that exists only in memory (fresh from
    :class:`~genarch.data.bpe.BPETrainer`) has no reference: ``config`` then
    raises :class:`~genarch.errors.ConfigError`; save it and use
    ``TiktokenTokenizer.load(directory)``. :meth:`save` makes a
    self-contained copy (the tokeniser is saved inside the stage's directory).

    Args:
        tokenizer: a :class:`TiktokenTokenizer`, :class:`ByteTokenizer` or any
            object with the :class:`~genarch.protocols.Tokenizer` methods.
        allowed_special: special tokens read from document text (default none:
            their text is ordinary text).
        append_special: a special token appended after each document.

    Examples:
        >>> from genarch import Document
        >>> from genarch.data import ByteTokenizer
        >>> stage = Tokenize(ByteTokenizer(special_tokens=("<|endoftext|>",)),
        ...                  append_special="<|endoftext|>")
        >>> [d.token_ids for d in stage.process([Document(id="a", text="hi")])]
        [(104, 105, 256)]
        >>> Tokenize.from_config(stage.config).config == stage.config
        True
    """

    def __init__(
        self,
        tokenizer: TokenizerProtocol,
        *,
        allowed_special: Iterable[str] = (),
        append_special: str | None = None,
    ) -> None:
        if not isinstance(tokenizer, TokenizerProtocol):
            raise InvalidInputError(
                f"Tokenize expected a tokenizer (vocab_size, encode, decode), got {describe(tokenizer)}"
            )
        specials: Mapping[str, int] = getattr(tokenizer, "special_tokens", {})
        self._allowed = _allowed(allowed_special, specials, "Tokenize")
        if append_special is not None and append_special not in specials:
            raise ConfigError(
                f"Tokenize: append_special {append_special!r} is not a special token of the "
                f"tokenizer (it has {sorted(specials)!r})"
            )
        self._tokenizer = tokenizer
        self._append = [] if append_special is None else [specials[append_special]]
        self._append_special = append_special

    @property
    def tokenizer(self) -> TokenizerProtocol:
        """The tokeniser used."""
        return self._tokenizer

    @property
    def config(self) -> TokenizeConfig:
        """The stage's configuration, naming the tokeniser by reference.

        Raises:
            ConfigError: the tokeniser has no reference (it exists only in memory).
        """
        reference = getattr(self._tokenizer, "reference", None)
        if reference is None:
            raise ConfigError(
                f"Tokenize cannot describe its tokenizer {self._tokenizer!r} in a config: it "
                "exists only in memory. Save it (tokenizer.save(directory)) and build the stage "
                "from TiktokenTokenizer.load(directory)."
            )
        return TokenizeConfig(
            tokenizer=reference,
            allowed_special=tuple(sorted(self._allowed)),
            append_special=self._append_special,
        )

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Rebuild the stage, loading the tokeniser its config references.

        Raises:
            ConfigError: the config is malformed.
            NotFoundError / IntegrityError: the referenced tokeniser is missing or changed.
        """
        if not isinstance(config, TokenizeConfig):
            if isinstance(config, BaseModel):
                config = config.model_dump()
            if not isinstance(config, Mapping):
                raise ConfigError(
                    f"Tokenize.from_config expected a mapping, got {describe(config)}"
                )
            try:
                config = TokenizeConfig.parse(config)
            except InvalidInputError as error:
                raise ConfigError(str(error)) from None
        return cls(
            load_tokenizer(config.tokenizer),
            allowed_special=config.allowed_special,
            append_special=config.append_special,
        )

    def process(self, items: Iterable[Document]) -> Iterator[TokenizedDocument]:
        """Yield one :class:`TokenizedDocument` per document, lazily.

        Raises:
            InvalidInputError: an item is not a Document, or its text cannot be encoded.
        """
        documents = checked_items(items, Document, where="Tokenize.process")
        return self._tokenize(documents)

    def _tokenize(self, documents: Iterator[Document]) -> Iterator[TokenizedDocument]:
        encode: Any = self._tokenizer.encode
        allowed = self._allowed
        for document in documents:
            try:
                ids = (
                    encode(document.text, allowed_special=allowed)
                    if allowed
                    else encode(document.text)
                )
            except InvalidInputError as error:
                raise InvalidInputError(f"Tokenize: document {document.id!r}: {error}") from None
            # Built without re-validating: the id and metadata come from a valid
            # Document and the ids from the tokenizer (validation would cost a
            # third of the encode time on long documents).
            yield TokenizedDocument.model_construct(
                document_id=document.id,
                token_ids=tuple(ids + self._append),
                metadata=document.metadata,
            )

    def save(self, directory: PathLike) -> None:
        """Save the stage with a copy of its tokeniser, atomically."""
        save = getattr(self._tokenizer, "save", None)
        if save is None:
            raise ConfigError(f"Tokenize.save: the tokenizer {self._tokenizer!r} cannot be saved")
        with atomic_directory(directory) as staging:
            save(staging / "tokenizer")
            settings = {
                "format": "genarch.tokenize/1",
                "allowed_special": sorted(self._allowed),
                "append_special": self._append_special,
            }
            (staging / "tokenize.json").write_text(json.dumps(settings, indent=2) + "\n", "utf-8")

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load a stage written by :meth:`save`.

        Raises:
            NotFoundError: nothing saved in ``directory``.
            IntegrityError: the files are corrupt.
        """
        folder = Path(directory)
        settings_file = folder / "tokenize.json"
        if not settings_file.is_file():
            raise NotFoundError(f"Tokenize.load: no saved stage in {str(folder)!r}")
        try:
            settings = json.loads(settings_file.read_text("utf-8"))
            if settings.get("format") != "genarch.tokenize/1":
                raise IntegrityError(f"Tokenize.load: {str(settings_file)!r} is of another kind")
            return cls(
                load_tokenizer(folder / "tokenizer"),
                allowed_special=settings["allowed_special"],
                append_special=settings["append_special"],
            )
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, AttributeError) as error:
            raise IntegrityError(f"Tokenize.load: {str(folder)!r} is corrupt: {error}") from None

    def __repr__(self) -> str:
        return (
            f"Tokenize({self._tokenizer!r}, allowed_special={sorted(self._allowed)!r}, "
            f"append_special={self._append_special!r})"
        )
