"""Tokenisers: text to token ids and back, with tiktoken as the engine.

* :class:`TiktokenTokenizer` wraps any :class:`tiktoken.Encoding` — a standard
  one (``cl100k_base``, ``o200k_base``, ...) read from a local file, or one
  trained by :class:`~genarch.data.bpe.BPETrainer`. Encoding runs in tiktoken's
  Rust core; on the default path the wrapper adds no work of its own.
* :class:`ByteTokenizer` maps text to its UTF-8 bytes (ids 0-255) plus optional
  special tokens: no training, no files, every string round-trips.
* :class:`~genarch.data.tokenize.Tokenize` is the pipeline stage: ``Document -> TokenizedDocument``.

Special tokens are never read from user text by accident: by default text such
as ``"<|endoftext|>"`` inside a document is encoded as ordinary text. Only the
special tokens you name in ``allowed_special`` become control tokens.

Standard encodings never trigger a download: see :mod:`genarch.data.encodings`
(whose names this module re-exports).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import regex
import tiktoken
from pydantic import BaseModel, Field, model_validator

from genarch._io import atomic_directory, sha256_file
from genarch.data.encodings import (
    CL100K_PATTERN,
    GPT2_PATTERN,
    O200K_PATTERN,
    STANDARD_ENCODINGS,
    StandardEncoding,
    build_encoding,
    load_standard_encoding,
    read_tiktoken_file,
    standard_encoding_cache_paths,
    write_tiktoken_file,
)
from genarch.errors import (
    ConfigError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from genarch.protocols import PathLike
from genarch.schemas import Config, Record
from genarch.validation import checked_items, describe

__all__ = [
    "CL100K_PATTERN",
    "GPT2_PATTERN",
    "O200K_PATTERN",
    "STANDARD_ENCODINGS",
    "ByteTokenizer",
    "ByteTokenizerConfig",
    "GenarchTokenizer",
    "SavedTokenizerReference",
    "StandardEncoding",
    "StandardEncodingReference",
    "TiktokenTokenizer",
    "TokenizerReference",
    "build_encoding",
    "load_standard_encoding",
    "load_tokenizer",
    "read_tiktoken_file",
    "standard_encoding_cache_paths",
    "write_tiktoken_file",
]

logger = logging.getLogger(__name__)


_SIDECAR = "tokenizer.json"
_VOCAB = "vocab.tiktoken"
_FORMAT = "genarch.tokenizer/1"

# ------------------------------------------------------------------- references


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


class StandardEncodingReference(Record):
    """A standard encoding by name, read from ``path`` or tiktoken's cache."""

    kind: Literal["standard"] = "standard"
    name: str
    path: str | None = None
    allowed_special: tuple[str, ...] = ()


class SavedTokenizerReference(Record):
    """A tokeniser saved with ``save(path)``; ``vocab_sha256`` pins the vocabulary."""

    kind: Literal["saved"] = "saved"
    path: Annotated[str, Field(min_length=1)]
    vocab_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


TokenizerReference = Annotated[
    ByteTokenizerConfig | StandardEncodingReference | SavedTokenizerReference,
    Field(discriminator="kind"),
]
"""How a pipeline config names a tokeniser so that it can be rebuilt."""


# ------------------------------------------------------------------ helpers


def _allowed(
    allowed_special: Iterable[str] | Literal["all"], specials: Mapping[str, int], where: str
) -> frozenset[str]:
    if allowed_special == "all":
        return frozenset(specials)
    if isinstance(allowed_special, str) or not isinstance(allowed_special, Iterable):
        raise InvalidInputError(
            f"{where}: allowed_special must be a collection of special-token strings or 'all', "
            f"got {describe(allowed_special)}"
        )
    allowed = frozenset(allowed_special)
    unknown = allowed - set(specials)
    if unknown:
        raise InvalidInputError(
            f"{where}: allowed_special names {sorted(unknown)!r}, which are not special tokens "
            f"of this tokenizer (it has {sorted(specials)!r})"
        )
    return allowed


def _not_text(text: object, where: str) -> InvalidInputError:
    hint = " (decode bytes first: data.decode('utf-8'))" if isinstance(text, bytes) else ""
    return InvalidInputError(f"{where} expected text of type str, got {describe(text)}{hint}")


def _surrogates(where: str) -> InvalidInputError:
    return InvalidInputError(
        f"{where}: the text contains a lone surrogate (e.g. from decoding with "
        "errors='surrogateescape'), which is not valid Unicode and cannot round-trip; "
        "decode the source with errors='replace' instead"
    )


def _bad_ids(
    token_ids: object, vocab_size: int, error: Exception | None = None
) -> InvalidInputError:
    detail = f" ({error})" if error is not None else ""
    return InvalidInputError(
        f"decode expected a sequence of token ids in range({vocab_size}), got "
        f"{describe(token_ids)}{detail}"
    )


def _as_id_list(token_ids: object, vocab_size: int) -> Sequence[int]:
    """Accept a list/tuple of ints, or an integer numpy array / torch tensor (via ``tolist``)."""
    if isinstance(token_ids, list | tuple):
        return token_ids
    tolist = getattr(token_ids, "tolist", None)
    if callable(tolist) and getattr(token_ids, "ndim", None) == 1:
        values = tolist()
        if isinstance(values, list):
            return values
    if isinstance(token_ids, str | bytes) or not isinstance(token_ids, Iterable):
        raise _bad_ids(token_ids, vocab_size)
    return list(token_ids)


def _read_sidecar(directory: Path, where: str) -> dict[str, Any]:
    sidecar = directory / _SIDECAR
    if not sidecar.is_file():
        raise NotFoundError(
            f"{where}: no saved tokenizer in {str(directory)!r} ({_SIDECAR} missing)"
        )
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IntegrityError(f"{where}: {str(sidecar)!r} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise IntegrityError(f"{where}: {str(sidecar)!r} was not written by a genarch tokenizer")
    return data


# ------------------------------------------------------------------ tiktoken


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
        self._allowed = _allowed(allowed_special, self._specials, "TiktokenTokenizer")
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
        """Load a standard encoding offline (see :func:`load_standard_encoding`).

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
        """Build from mergeable ranks, validating them first (see :func:`build_encoding`)."""
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
                raise _not_text(text, "TiktokenTokenizer.encode") from None
            except UnicodeEncodeError:
                raise _surrogates("TiktokenTokenizer.encode") from None
        if not isinstance(text, str):
            raise _not_text(text, "TiktokenTokenizer.encode")
        allowed = (
            self._allowed
            if allowed_special is None
            else _allowed(allowed_special, self._specials, "TiktokenTokenizer.encode")
        )
        try:
            if allowed:
                return self._core.encode(text, allowed)  # type: ignore[no-any-return]
            return self._encode_ordinary(text)  # type: ignore[no-any-return]
        except UnicodeEncodeError:
            raise _surrogates("TiktokenTokenizer.encode") from None

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
            else _allowed(allowed_special, self._specials, "TiktokenTokenizer.encode_batch")
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
        token_ids = _as_id_list(token_ids, self.vocab_size)
        try:
            data = self._core.decode_bytes(token_ids)
        except (KeyError, OverflowError, TypeError, ValueError) as error:
            raise _bad_ids(token_ids, self.vocab_size, error) from None
        return data.decode("utf-8", errors="replace")  # type: ignore[no-any-return]

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for."""
        try:
            return self._core.decode_single_token_bytes(token_id)  # type: ignore[no-any-return]
        except (KeyError, OverflowError, TypeError, ValueError) as error:
            raise _bad_ids([token_id], self.vocab_size, error) from None

    # -- persistence ---------------------------------------------------------------

    def save(self, directory: PathLike) -> None:
        """Write ``vocab.tiktoken`` (tiktoken's format) and ``tokenizer.json``, atomically."""
        ranks = self._encoding._mergeable_ranks
        with atomic_directory(directory) as staging:
            write_tiktoken_file(ranks, staging / _VOCAB)
            sidecar = {
                "format": _FORMAT,
                "kind": "tiktoken",
                "name": self._encoding.name,
                "pattern": self._encoding._pat_str,
                "special_tokens": self._specials,
                "allowed_special": sorted(self._allowed),
                "vocab_file": _VOCAB,
                "vocab_sha256": sha256_file(staging / _VOCAB),
            }
            (staging / _SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load a tokenizer written by :meth:`save`.

        Raises:
            NotFoundError: ``directory`` holds no saved tokenizer.
            IntegrityError: the files are corrupt or of another kind of tokenizer.
        """
        folder = Path(directory)
        data = _read_sidecar(folder, "TiktokenTokenizer.load")
        if data.get("kind") != "tiktoken":
            raise IntegrityError(
                f"TiktokenTokenizer.load: {str(folder)!r} holds a {data.get('kind')!r} tokenizer; "
                "use genarch.data.load_tokenizer to load any kind"
            )
        try:
            ranks = read_tiktoken_file(folder / _VOCAB, expected_sha256=data["vocab_sha256"])
            encoding = build_encoding(
                data["name"],
                pattern=data["pattern"],
                ranks=ranks,
                special_tokens=data["special_tokens"],
            )
            tokenizer = cls(encoding, allowed_special=data["allowed_special"])
        except (KeyError, TypeError, InvalidInputError) as error:
            raise IntegrityError(
                f"TiktokenTokenizer.load: {str(folder)!r} is corrupt: {error}"
            ) from None
        except NotFoundError as error:
            raise IntegrityError(f"TiktokenTokenizer.load: {error}") from None
        tokenizer._reference = SavedTokenizerReference(
            path=str(folder.resolve()), vocab_sha256=data["vocab_sha256"]
        )
        return tokenizer

    def __repr__(self) -> str:
        return (
            f"TiktokenTokenizer(name={self.name!r}, vocab_size={self.vocab_size}, "
            f"special_tokens={len(self._specials)}, allowed_special={sorted(self._allowed)!r})"
        )


# ---------------------------------------------------------------------- bytes


class ByteTokenizer:
    """UTF-8 bytes as tokens (ids 0-255), plus optional special tokens from id 256.

    Needs no vocabulary file and round-trips every string; sequences are about
    four times longer than with a trained BPE vocabulary.

    Args:
        config: a :class:`ByteTokenizerConfig`; keyword arguments are shorthand
            for its fields.

    Examples:
        >>> tokenizer = ByteTokenizer(special_tokens=("<|endoftext|>",))
        >>> tokenizer.encode("hé")
        [104, 195, 169]
        >>> tokenizer.encode("a<|endoftext|>", allowed_special="all")
        [97, 256]
        >>> tokenizer.decode([104, 195, 169, 256])
        'hé<|endoftext|>'
    """

    def __init__(self, config: ByteTokenizerConfig | None = None, **fields: Any) -> None:
        if config is not None and fields:
            raise ConfigError("pass either a ByteTokenizerConfig or keyword fields, not both")
        if config is not None and not isinstance(config, ByteTokenizerConfig):
            raise ConfigError(
                f"ByteTokenizer expected a ByteTokenizerConfig, got {describe(config)}"
            )
        try:
            self._config = config if config is not None else ByteTokenizerConfig(**fields)
        except InvalidInputError as error:
            raise ConfigError(str(error)) from None
        self._specials = {token: 256 + i for i, token in enumerate(self._config.special_tokens)}
        self._by_id = {i: token.encode("utf-8") for token, i in self._specials.items()}
        self._allowed = frozenset(self._config.allowed_special)
        self._splitters: dict[frozenset[str], regex.Pattern[str]] = {}

    @property
    def config(self) -> ByteTokenizerConfig:
        """The frozen configuration (also this tokeniser's reference)."""
        return self._config

    @property
    def reference(self) -> ByteTokenizerConfig:
        """How a config names this tokeniser: its own config."""
        return self._config

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Build from a config object or mapping."""
        if isinstance(config, ByteTokenizerConfig):
            return cls(config)
        if isinstance(config, BaseModel):
            config = config.model_dump()
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"ByteTokenizer.from_config expected a mapping, got {describe(config)}"
            )
        try:
            return cls(ByteTokenizerConfig.parse(config))
        except InvalidInputError as error:
            raise ConfigError(str(error)) from None

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
            raise _not_text(text, "ByteTokenizer.encode")
        allowed = (
            self._allowed
            if allowed_special is None
            else _allowed(allowed_special, self._specials, "ByteTokenizer.encode")
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
            raise _surrogates("ByteTokenizer.encode") from None

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of ``token_ids``; bytes that do not form UTF-8 become U+FFFD.

        Raises:
            InvalidInputError: an id is not an int in ``range(vocab_size)``.
        """
        token_ids = _as_id_list(token_ids, self.vocab_size)
        try:
            data = bytes(token_ids)
        except (TypeError, ValueError):
            ids = list(token_ids)
            parts = []
            for token_id in ids:
                if not isinstance(token_id, int):
                    raise _bad_ids(ids, self.vocab_size) from None
                if 0 <= token_id < 256:
                    parts.append(bytes((token_id,)))
                elif token_id in self._by_id:
                    parts.append(self._by_id[token_id])
                else:
                    raise _bad_ids(ids, self.vocab_size) from None
            data = b"".join(parts)
        return data.decode("utf-8", errors="replace")

    def save(self, directory: PathLike) -> None:
        """Write ``tokenizer.json``, atomically."""
        with atomic_directory(directory) as staging:
            sidecar = {"format": _FORMAT, **self._config.model_dump(mode="json")}
            (staging / _SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load a tokenizer written by :meth:`save`.

        Raises:
            NotFoundError: ``directory`` holds no saved tokenizer.
            IntegrityError: the file is corrupt or of another kind of tokenizer.
        """
        data = _read_sidecar(Path(directory), "ByteTokenizer.load")
        data.pop("format")
        if data.get("kind") != "bytes":
            raise IntegrityError(
                f"ByteTokenizer.load: {str(directory)!r} holds a {data.get('kind')!r} tokenizer; "
                "use genarch.data.load_tokenizer to load any kind"
            )
        try:
            return cls(ByteTokenizerConfig.parse(data))
        except InvalidInputError as error:
            raise IntegrityError(
                f"ByteTokenizer.load: {str(directory)!r} is corrupt: {error}"
            ) from None

    def __repr__(self) -> str:
        return f"ByteTokenizer({self._config!r})"


GenarchTokenizer = TiktokenTokenizer | ByteTokenizer


def load_tokenizer(
    source: PathLike | ByteTokenizerConfig | StandardEncodingReference | SavedTokenizerReference,
) -> GenarchTokenizer:
    """Load any genarch tokeniser from a saved directory or a reference.

    Raises:
        NotFoundError: nothing saved there, or a standard encoding's file is missing.
        IntegrityError: the saved files are corrupt, or differ from the
            reference's ``vocab_sha256``.
    """
    if isinstance(source, ByteTokenizerConfig):
        return ByteTokenizer(source)
    if isinstance(source, StandardEncodingReference):
        return TiktokenTokenizer.standard(
            source.name, path=source.path, allowed_special=source.allowed_special
        )
    if isinstance(source, SavedTokenizerReference):
        tokenizer = load_tokenizer(source.path)
        if source.vocab_sha256 is not None:
            saved = tokenizer.reference
            actual = saved.vocab_sha256 if isinstance(saved, SavedTokenizerReference) else None
            if actual != source.vocab_sha256:
                raise IntegrityError(
                    f"the tokenizer at {source.path!r} has changed since the config was written "
                    f"(vocabulary SHA-256 {actual}, expected {source.vocab_sha256})"
                )
        return tokenizer
    if not isinstance(source, str | os.PathLike):
        raise InvalidInputError(
            f"load_tokenizer expected a directory or a tokenizer reference, got {describe(source)}"
        )
    kind = _read_sidecar(Path(source), "load_tokenizer").get("kind")
    if kind == "bytes":
        return ByteTokenizer.load(source)
    if kind == "tiktoken":
        return TiktokenTokenizer.load(source)
    raise IntegrityError(
        f"load_tokenizer: {str(source)!r} holds an unknown tokenizer kind {kind!r}"
    )
