"""The tokenising pipeline stage: ``Document -> TokenizedDocument``.

:class:`Tokenize` runs any :class:`~genarch.protocols.Tokenizer` over a stream
of documents. The tokenisers themselves live in
:mod:`genarch.data.tiktoken_tokenizer` and :mod:`genarch.data.byte_tokenizer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field

from genarch.data._tokenizer_common import allowed_specials
from genarch.data.tokenizer_references import TokenizerReference, load_tokenizer
from genarch.errors import ConfigError, InvalidInputError
from genarch.persistence import open_saved, reading, save_component
from genarch.protocols import PathLike
from genarch.protocols import Tokenizer as TokenizerProtocol
from genarch.schemas import Config, Document, Metadata, Record
from genarch.validation import checked_items, describe

__all__ = ["Tokenize", "TokenizeConfig", "TokenizedDocument"]

_FORMAT = "genarch.tokenize/1"
_HEADER_FILE = "tokenize.json"
_TOKENIZER_DIR = "tokenizer"  # the stage's own copy of its tokeniser


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
    not by value (a :data:`~genarch.data.tokenizer_references.TokenizerReference`):
    a byte tokeniser's config, a standard encoding name, or the directory a
    tokeniser was saved to (with the vocabulary's SHA-256, so a changed file is
    caught). ``Tokenize.from_config`` rebuilds the tokeniser
    from that. A tokeniser that exists only in memory (fresh from
    :class:`~genarch.data.bpe.BPETrainer`) has no reference: ``config`` then
    raises :class:`~genarch.errors.ConfigError`; save it and use
    ``TiktokenTokenizer.load(directory)``. :meth:`save` makes a
    self-contained copy (the tokeniser is saved inside the stage's directory).

    Why this stage does not use the :class:`~genarch.configured.Configured`
    shell: it is built from a tokeniser *object* (which may exist only in
    memory), and its ``config`` is a description derived from that tokeniser
    when asked for, not the config it was built from.

    Args:
        tokenizer: a :class:`~genarch.data.tiktoken_tokenizer.TiktokenTokenizer`,
            :class:`~genarch.data.byte_tokenizer.ByteTokenizer` or any
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
        self._allowed = allowed_specials(allowed_special, specials, "Tokenize")
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
        config = TokenizeConfig.coerce(config)
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

        def save_tokenizer(staging: Path) -> None:
            save(staging / _TOKENIZER_DIR)

        save_component(
            directory,
            _FORMAT,
            header={
                "allowed_special": sorted(self._allowed),
                "append_special": self._append_special,
            },
            write_files=save_tokenizer,
            header_file=_HEADER_FILE,
        )

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load a stage written by :meth:`save`.

        Raises:
            NotFoundError: nothing saved in ``directory``.
            IntegrityError: the files are corrupt.
        """
        saved = open_saved(directory, _FORMAT, header_file=_HEADER_FILE)
        with reading(saved.kind, saved.root):
            return cls(
                load_tokenizer(saved.root / _TOKENIZER_DIR),
                allowed_special=saved.field("allowed_special"),
                append_special=saved.field("append_special"),
            )

    def __repr__(self) -> str:
        return (
            f"Tokenize({self._tokenizer!r}, allowed_special={sorted(self._allowed)!r}, "
            f"append_special={self._append_special!r})"
        )
