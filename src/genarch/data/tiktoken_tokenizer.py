"""The tiktoken tokeniser: any :class:`tiktoken.Encoding`, standard or trained.

:class:`TiktokenTokenizer` wraps a standard encoding (``cl100k_base``,
``o200k_base``, ... read offline, see :mod:`genarch.data.tiktoken_files`) or
one trained by :class:`~genarch.data.bpe.BPETrainer`. Encoding runs in
tiktoken's Rust core; on the default path the wrapper adds no work of its own.

Special tokens are never read from user text by accident: by default text such
as ``"<|endoftext|>"`` inside a document is encoded as ordinary text. Only the
special tokens you name in ``allowed_special`` become control tokens.

A tokeniser loaded from a standard encoding or a saved directory knows its
*reference* (:class:`StandardEncodingReference`, :class:`SavedTokenizerReference`),
which is how a pipeline config names it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Literal, Self

import tiktoken
from pydantic import Field

from genarch.data._tokenizer_common import (
    TOKENIZER_FILE,
    TOKENIZER_FORMAT,
    allowed_specials,
    as_id_list,
    bad_ids_error,
    is_rust_panic,
    not_text_error,
    open_saved_tokenizer,
    surrogates_error,
)
from genarch.data.tiktoken_files import (
    CL100K_PATTERN,
    build_encoding,
    load_standard_encoding,
    read_tiktoken_file,
    tiktoken_file_bytes,
)
from genarch.errors import InvalidInputError
from genarch.persistence import reading, save_component
from genarch.protocols import PathLike
from genarch.schemas import Record
from genarch.validation import checked_items, describe

__all__ = ["SavedTokenizerReference", "StandardEncodingReference", "TiktokenTokenizer"]

_VOCAB = "vocab.tiktoken"


class StandardEncodingReference(Record):
    """A standard encoding by name, read from ``path`` or tiktoken's cache."""

    kind: Literal["standard"] = "standard"
    name: str
    path: str | None = None
    allowed_special: tuple[str, ...] = ()


class SavedTokenizerReference(Record):
    """A tokeniser saved with ``save(path)``, pinned to what was saved there.

    ``content_sha256`` (the SHA-256 of the save's ``SHA256SUMS``) pins *every*
    file — the vocabulary, and the settings that change behaviour: the split
    pattern, the special tokens and which of them user text may produce.
    ``vocab_sha256`` alone (references written before manifests existed) pins
    only the vocabulary.
    """

    kind: Literal["saved"] = "saved"
    path: Annotated[str, Field(min_length=1)]
    vocab_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    content_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


class TiktokenTokenizer:
    """A :class:`~genarch.protocols.Tokenizer` over any :class:`tiktoken.Encoding`.

    Args:
        encoding: the tiktoken encoding (standard or trained).
        allowed_special: special tokens that ``encode`` turns into their ids when
            they appear in text (``"all"`` for every one). By default none:
            ``"<|endoftext|>"`` in user text is encoded as ordinary text, so
            input cannot inject control tokens.

    Examples:
        >>> from genarch.data.bpe import BPETrainer
        >>> tokenizer = BPETrainer(vocab_size=300).train(["to be or not to be"] * 10)
        >>> ids = tokenizer.encode("to be<|endoftext|>")
        >>> tokenizer.decode(ids)
        'to be<|endoftext|>'
        >>> tokenizer.special_tokens["<|endoftext|>"] in ids
        False
        >>> tokenizer.special_tokens["<|endoftext|>"] in tokenizer.encode(
        ...     "to be<|endoftext|>", allowed_special={"<|endoftext|>"})
        True
    """

    def __init__(
        self,
        encoding: tiktoken.Encoding,
        *,
        allowed_special: Iterable[str] | Literal["all"] = (),
    ) -> None:
        if not isinstance(encoding, tiktoken.Encoding):
            raise InvalidInputError(
                f"TiktokenTokenizer expected a tiktoken.Encoding, got {describe(encoding)}"
            )
        self._encoding = encoding
        self._specials: dict[str, int] = dict(encoding._special_tokens)
        self._allowed = allowed_specials(allowed_special, self._specials, "TiktokenTokenizer")
        # tiktoken's Rust encoder. Calling it directly (a private attribute, stable
        # since tiktoken 0.1) skips a Python frame and lets a lone surrogate raise
        # instead of being silently replaced, as Encoding.encode_ordinary does.
        self._core = encoding._core_bpe
        self._encode_ordinary = self._core.encode_ordinary
        self._reference: StandardEncodingReference | SavedTokenizerReference | None = None

    # -- construction ------------------------------------------------------------

    @classmethod
    def standard(
        cls,
        name: str,
        *,
        path: PathLike | None = None,
        allowed_special: Iterable[str] | Literal["all"] = (),
    ) -> Self:
        """Load a standard encoding offline.

        See :func:`~genarch.data.tiktoken_files.load_standard_encoding`.

        Raises:
            NotFoundError: the file is not at ``path`` nor in tiktoken's cache.
            IntegrityError: the file's SHA-256 is not the published one.
        """
        tokenizer = cls(load_standard_encoding(name, path), allowed_special=allowed_special)
        tokenizer._reference = StandardEncodingReference(
            name=name,
            path=None if path is None else str(Path(path).resolve()),
            allowed_special=tuple(sorted(tokenizer._allowed)),
        )
        return tokenizer

    @classmethod
    def from_ranks(
        cls,
        ranks: Mapping[bytes, int],
        *,
        pattern: str = CL100K_PATTERN,
        special_tokens: Mapping[str, int] | None = None,
        name: str = "custom",
        allowed_special: Iterable[str] | Literal["all"] = (),
    ) -> Self:
        """Build from mergeable ranks, validating them first.

        See :func:`~genarch.data.tiktoken_files.build_encoding`.
        """
        encoding = build_encoding(
            name, pattern=pattern, ranks=ranks, special_tokens=dict(special_tokens or {})
        )
        return cls(encoding, allowed_special=allowed_special)

    # -- the Tokenizer protocol --------------------------------------------------

    @property
    def encoding(self) -> tiktoken.Encoding:
        """The underlying tiktoken encoding."""
        return self._encoding

    @property
    def name(self) -> str:
        """The encoding's name."""
        return self._encoding.name

    @property
    def vocab_size(self) -> int:
        """One more than the largest id (ids may have gaps, as in ``cl100k_base``)."""
        return self._encoding.n_vocab

    @property
    def special_tokens(self) -> dict[str, int]:
        """Every special token and its id (a copy)."""
        return dict(self._specials)

    @property
    def allowed_special(self) -> frozenset[str]:
        """The special tokens ``encode`` reads from text by default."""
        return self._allowed

    @property
    def reference(self) -> StandardEncodingReference | SavedTokenizerReference | None:
        """How a config can name this tokeniser: set for standard and loaded
        tokenisers, ``None`` for one built in memory (save and load it first)."""
        return self._reference

    def encode(
        self, text: str, *, allowed_special: Iterable[str] | Literal["all"] | None = None
    ) -> list[int]:
        """Token ids of ``text``.

        Args:
            text: any string.
            allowed_special: overrides the tokenizer's ``allowed_special`` for this call.

        Raises:
            InvalidInputError: ``text`` is not a str, or contains a lone surrogate.
        """
        if allowed_special is None and not self._allowed:
            # The hot path: straight into tiktoken's Rust encoder, which checks the
            # type itself (a TypeError for a non-str), so validation costs nothing.
            try:
                return self._encode_ordinary(text)  # type: ignore[no-any-return]
            except TypeError:
                raise not_text_error(text, "TiktokenTokenizer.encode") from None
            except UnicodeEncodeError:
                raise surrogates_error("TiktokenTokenizer.encode", text) from None
            except BaseException as error:  # a Rust panic is no Exception
                raise self._panic_error(error) from None
        if not isinstance(text, str):
            raise not_text_error(text, "TiktokenTokenizer.encode")
        allowed = (
            self._allowed
            if allowed_special is None
            else allowed_specials(allowed_special, self._specials, "TiktokenTokenizer.encode")
        )
        try:
            if allowed:
                return self._core.encode(text, allowed)  # type: ignore[no-any-return]
            return self._encode_ordinary(text)  # type: ignore[no-any-return]
        except UnicodeEncodeError:
            raise surrogates_error("TiktokenTokenizer.encode", text) from None
        except BaseException as error:  # a Rust panic is no Exception
            raise self._panic_error(error) from None

    def _panic_error(self, error: BaseException) -> BaseException:
        """``InvalidInputError`` for a panic of tiktoken's Rust core; anything else unchanged.

        Patterns that can match the empty string are refused when the encoding
        is built (:func:`~genarch.data.tiktoken_files.build_encoding`); this is
        the safety net for one that matches it only in a context no probe tried.
        """
        if not is_rust_panic(error):
            return error
        return InvalidInputError(
            f"TiktokenTokenizer.encode: tiktoken failed on this text with the split pattern "
            f"{self._encoding._pat_str!r} ({error}); a pattern that can match the empty "
            "string makes tiktoken panic: make every alternative consume a character"
        )

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: Iterable[str] | Literal["all"] | None = None,
        num_threads: int = 2,
    ) -> list[list[int]]:
        """Encode many texts, in parallel threads (tiktoken releases the GIL).

        Equals ``[encode(t) for t in texts]``.

        Raises:
            InvalidInputError: ``texts`` is not a sequence of str, or ``num_threads < 1``.
        """
        items = list(checked_items(texts, str, where="TiktokenTokenizer.encode_batch"))
        if type(num_threads) is not int or num_threads < 1:
            raise InvalidInputError(
                f"encode_batch expected num_threads >= 1, got {describe(num_threads)}"
            )
        allowed = (
            self._allowed
            if allowed_special is None
            else allowed_specials(allowed_special, self._specials, "TiktokenTokenizer.encode_batch")
        )
        if num_threads == 1 or len(items) < 2:
            return [self.encode(text, allowed_special=allowed) for text in items]
        with ThreadPoolExecutor(num_threads) as pool:
            return list(pool.map(lambda text: self.encode(text, allowed_special=allowed), items))

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of ``token_ids``; bytes that do not form UTF-8 become U+FFFD.

        Raises:
            InvalidInputError: an id is not an int in the vocabulary.
        """
        token_ids = as_id_list(token_ids, self.vocab_size)
        try:
            data = self._core.decode_bytes(token_ids)
        except (KeyError, OverflowError, TypeError, ValueError) as error:
            raise bad_ids_error(token_ids, self.vocab_size, error) from None
        return data.decode("utf-8", errors="replace")  # type: ignore[no-any-return]

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for.

        Raises:
            InvalidInputError: ``token_id`` is not an int (a bool is not) in the vocabulary.
        """
        if isinstance(token_id, bool):
            raise bad_ids_error([token_id], self.vocab_size)
        try:
            return self._core.decode_single_token_bytes(token_id)  # type: ignore[no-any-return]
        except (KeyError, OverflowError, TypeError, ValueError) as error:
            raise bad_ids_error([token_id], self.vocab_size, error) from None

    # -- persistence ---------------------------------------------------------------
    # -- persistence ---------------------------------------------------------------

    def save(self, directory: PathLike) -> None:
        """Write ``vocab.tiktoken`` (tiktoken's format) and ``tokenizer.json``, atomically."""
        vocab = tiktoken_file_bytes(self._encoding._mergeable_ranks)
        header = {
            "kind": "tiktoken",
            "name": self._encoding.name,
            "pattern": self._encoding._pat_str,
            "special_tokens": self._specials,
            "allowed_special": sorted(self._allowed),
            "vocab_file": _VOCAB,
            "vocab_sha256": hashlib.sha256(vocab).hexdigest(),
        }

        def write_vocabulary(staging: Path) -> None:
            (staging / _VOCAB).write_bytes(vocab)

        save_component(
            directory,
            TOKENIZER_FORMAT,
            header=header,
            write_files=write_vocabulary,
            header_file=TOKENIZER_FILE,
        )

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load a tokenizer written by :meth:`save`.

        Raises:
            NotFoundError: ``directory`` holds no saved tokenizer.
            IntegrityError: the files are corrupt or of another kind of tokenizer.
        """
        saved = open_saved_tokenizer(directory, "tiktoken", "TiktokenTokenizer.load")
        with reading(saved.kind, saved.root):
            vocab_sha256 = saved.field("vocab_sha256")
            ranks = read_tiktoken_file(saved.path(_VOCAB), expected_sha256=vocab_sha256)
            encoding = build_encoding(
                saved.field("name"),
                pattern=saved.field("pattern"),
                ranks=ranks,
                special_tokens=saved.field("special_tokens"),
            )
            tokenizer = cls(encoding, allowed_special=saved.field("allowed_special"))
            tokenizer._reference = SavedTokenizerReference(
                path=str(Path(directory).resolve()),
                vocab_sha256=vocab_sha256,
                content_sha256=saved.digest,
            )
        return tokenizer

    def __repr__(self) -> str:
        return (
            f"TiktokenTokenizer(name={self.name!r}, vocab_size={self.vocab_size}, "
            f"special_tokens={len(self._specials)}, allowed_special={sorted(self._allowed)!r})"
        )
