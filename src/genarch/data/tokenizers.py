"""Tokenisers: text to token ids and back, with tiktoken as the engine.

* :class:`TiktokenTokenizer` wraps any :class:`tiktoken.Encoding` — a standard
  one (``cl100k_base``, ``o200k_base``, ...) read from a local file, or one
  trained by :class:`~genarch.data.bpe.BPETrainer`. Encoding runs in tiktoken's
  Rust core; on the default path the wrapper adds no work of its own.
* :class:`ByteTokenizer` maps text to its UTF-8 bytes (ids 0-255) plus optional
  special tokens: no training, no files, every string round-trips.
* :class:`Tokenize` is the pipeline stage: ``Document -> TokenizedDocument``.

Special tokens are never read from user text by accident: by default text such
as ``"<|endoftext|>"`` inside a document is encoded as ordinary text. Only the
special tokens you name in ``allowed_special`` become control tokens.

Standard encodings never trigger a download. They are read from a file you
give, or from tiktoken's own cache directory (``TIKTOKEN_CACHE_DIR``, else
``DATA_GYM_CACHE_DIR``, else ``<tmp>/data-gym-cache``; the file name is the
SHA-1 of the download URL, as tiktoken names it). When neither has the file,
:class:`~genarch.errors.NotFoundError` says where to put it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import regex
import tiktoken
from pydantic import BaseModel, Field, model_validator

from genarch._io import atomic_directory, sha256_file
from genarch.errors import (
    ConfigError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from genarch.protocols import PathLike
from genarch.protocols import Tokenizer as TokenizerProtocol
from genarch.schemas import Document, Metadata, Record
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
    "Tokenize",
    "TokenizeConfig",
    "TokenizedDocument",
    "TokenizerReference",
    "build_encoding",
    "load_standard_encoding",
    "load_tokenizer",
    "read_tiktoken_file",
    "standard_encoding_cache_paths",
    "write_tiktoken_file",
]

logger = logging.getLogger(__name__)

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
"""GPT-4's (``cl100k_base``) pre-tokeniser: words with one leading non-letter,
numbers in groups of up to three digits, punctuation runs, newlines, other space."""

GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
"""GPT-2's (``r50k_base``, ``p50k_base``) pre-tokeniser."""

O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
"""GPT-4o's (``o200k_base``) pre-tokeniser."""

_SIDECAR = "tokenizer.json"
_VOCAB = "vocab.tiktoken"
_FORMAT = "genarch.tokenizer/1"
_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"


# ------------------------------------------------------------- standard encodings


class StandardEncoding(Record):
    """Where a standard OpenAI encoding's ranks file comes from, and what it holds.

    Mirrors ``tiktoken_ext.openai_public`` (tiktoken 0.14) without its download.
    """

    name: str
    url: str
    sha256: str
    pattern: str
    special_tokens: dict[str, int]
    explicit_n_vocab: int | None = None


_ENDOFTEXT = "<|endoftext|>"
_FIM = {"<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260}

STANDARD_ENCODINGS: dict[str, StandardEncoding] = {
    encoding.name: encoding
    for encoding in (
        # tiktoken's "gpt2" reads GPT-2's original vocab.bpe/encoder.json; r50k_base
        # is the same vocabulary in tiktoken's format, so genarch reads that file.
        StandardEncoding(
            name="gpt2",
            url=_BLOB + "r50k_base.tiktoken",
            sha256="306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
            pattern=GPT2_PATTERN,
            special_tokens={_ENDOFTEXT: 50256},
            explicit_n_vocab=50257,
        ),
        StandardEncoding(
            name="r50k_base",
            url=_BLOB + "r50k_base.tiktoken",
            sha256="306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
            pattern=GPT2_PATTERN,
            special_tokens={_ENDOFTEXT: 50256},
            explicit_n_vocab=50257,
        ),
        StandardEncoding(
            name="p50k_base",
            url=_BLOB + "p50k_base.tiktoken",
            sha256="94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
            pattern=GPT2_PATTERN,
            special_tokens={_ENDOFTEXT: 50256},
            explicit_n_vocab=50281,
        ),
        StandardEncoding(
            name="p50k_edit",
            url=_BLOB + "p50k_base.tiktoken",
            sha256="94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
            pattern=GPT2_PATTERN,
            special_tokens={
                _ENDOFTEXT: 50256,
                "<|fim_prefix|>": 50281,
                "<|fim_middle|>": 50282,
                "<|fim_suffix|>": 50283,
            },
        ),
        StandardEncoding(
            name="cl100k_base",
            url=_BLOB + "cl100k_base.tiktoken",
            sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
            pattern=CL100K_PATTERN,
            special_tokens={_ENDOFTEXT: 100257, **_FIM, "<|endofprompt|>": 100276},
        ),
        StandardEncoding(
            name="o200k_base",
            url=_BLOB + "o200k_base.tiktoken",
            sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
            pattern=O200K_PATTERN,
            special_tokens={_ENDOFTEXT: 199999, "<|endofprompt|>": 200018},
        ),
    )
}
"""The standard encodings genarch can load offline, by name."""


def _cache_directories() -> list[Path]:
    """tiktoken's cache directories, the one tiktoken itself would use first."""
    found = []
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        value = os.environ.get(variable)
        if value:  # tiktoken treats "" as "caching disabled"
            found.append(Path(value))
    found.append(Path(tempfile.gettempdir()) / "data-gym-cache")
    return found


def standard_encoding_cache_paths(name: str) -> list[Path]:
    """Where tiktoken's cache would hold the ranks file of a standard encoding.

    tiktoken names a cached file by the SHA-1 of its download URL. The first path
    is the one tiktoken itself reads and writes.

    Examples:
        >>> standard_encoding_cache_paths("cl100k_base")[-1].name
        '9b5ad71b2ce5302211f9c61530b329a4922fc6a4'
    """
    spec = _standard(name)
    key = hashlib.sha1(spec.url.encode()).hexdigest()
    return [directory / key for directory in _cache_directories()]


def _standard(name: object) -> StandardEncoding:
    if not isinstance(name, str):
        raise InvalidInputError(f"expected an encoding name (str), got {describe(name)}")
    spec = STANDARD_ENCODINGS.get(name)
    if spec is None:
        raise NotFoundError(
            f"unknown standard encoding {name!r}; known: {', '.join(sorted(STANDARD_ENCODINGS))}. "
            "For your own vocabulary use TiktokenTokenizer.from_ranks or BPETrainer."
        )
    return spec


def load_standard_encoding(name: str, path: PathLike | None = None) -> tiktoken.Encoding:
    """Build a standard encoding from a local ranks file — never downloading.

    Args:
        name: one of :data:`STANDARD_ENCODINGS` (``"cl100k_base"``, ``"o200k_base"``, ...).
        path: the ``.tiktoken`` file. Without it, tiktoken's cache directory is
            searched (see :func:`standard_encoding_cache_paths`).

    Raises:
        NotFoundError: the name is unknown, or the file is neither at ``path``
            nor in the cache (the message says how to provide it).
        IntegrityError: the file's SHA-256 is not the published one.
    """
    spec = _standard(name)
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise NotFoundError(f"no {name} ranks file at {str(file)!r}. {_how_to_provide(spec)}")
        return _standard_from_file(spec, file)
    rejected = []
    for candidate in standard_encoding_cache_paths(name):
        if candidate.is_file():
            if sha256_file(candidate) == spec.sha256:
                return _standard_from_file(spec, candidate)
            rejected.append(str(candidate))
    note = f" (ignored {', '.join(rejected)}: wrong SHA-256)" if rejected else ""
    raise NotFoundError(
        f"the {name} encoding is not available offline: no ranks file in tiktoken's "
        f"cache{note}. {_how_to_provide(spec)}"
    )


def _how_to_provide(spec: StandardEncoding) -> str:
    cache = standard_encoding_cache_paths(spec.name)[0]
    return (
        f"Download {spec.url} (SHA-256 {spec.sha256}) on a machine with internet access, then "
        f"either pass its path (TiktokenTokenizer.standard({spec.name!r}, path=...)) or copy it "
        f"to {str(cache)!r}, the name tiktoken's cache uses (set TIKTOKEN_CACHE_DIR to choose "
        f"the directory). genarch never downloads it."
    )


def _standard_from_file(spec: StandardEncoding, file: Path) -> tiktoken.Encoding:
    ranks = read_tiktoken_file(file, expected_sha256=spec.sha256)
    return build_encoding(
        spec.name,
        pattern=spec.pattern,
        ranks=ranks,
        special_tokens=spec.special_tokens,
        explicit_n_vocab=spec.explicit_n_vocab,
    )


# -------------------------------------------------------------- .tiktoken files


def read_tiktoken_file(path: PathLike, expected_sha256: str | None = None) -> dict[bytes, int]:
    """Read mergeable ranks from tiktoken's format (``base64(token) rank`` per line).

    Raises:
        NotFoundError: no file at ``path``.
        IntegrityError: the SHA-256 differs from ``expected_sha256``, or a line is malformed.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no .tiktoken file at {str(file)!r}") from None
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise IntegrityError(
                f"{str(file)!r} has SHA-256 {actual}, expected {expected_sha256}: "
                "the file is corrupt, truncated or a different vocabulary"
            )
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise IntegrityError(
                f"{str(file)!r} line {number} is not 'base64-token rank': {line[:80]!r}"
            ) from None
    return ranks


def write_tiktoken_file(ranks: Mapping[bytes, int], path: PathLike) -> None:
    """Write mergeable ranks in tiktoken's format, sorted by rank (not atomic by itself)."""
    lines = [
        base64.b64encode(token) + b" " + str(rank).encode()
        for token, rank in sorted(ranks.items(), key=lambda item: item[1])
    ]
    Path(path).write_bytes(b"\n".join(lines) + b"\n")


def build_encoding(
    name: str,
    *,
    pattern: str,
    ranks: Mapping[bytes, int],
    special_tokens: Mapping[str, int],
    explicit_n_vocab: int | None = None,
) -> tiktoken.Encoding:
    """Validate the parts of an encoding, then build the :class:`tiktoken.Encoding`.

    tiktoken's Rust core panics (or silently mis-encodes) on some malformed
    vocabularies; this checks them first and says what is wrong.

    Raises:
        InvalidInputError: a single byte is missing from ``ranks``, ranks repeat
            or are negative, a special token is empty or shares an id with a
            rank, or the pattern does not compile.
    """
    if not isinstance(ranks, Mapping) or not all(
        isinstance(token, bytes) and type(rank) is int for token, rank in ranks.items()
    ):
        raise InvalidInputError(f"ranks must map bytes to int, got {describe(ranks)}")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        shown = ", ".join(f"0x{b:02x}" for b in missing[:8])
        raise InvalidInputError(
            f"encoding {name!r} lacks {len(missing)} of the 256 single-byte tokens ({shown}"
            f"{', ...' if len(missing) > 8 else ''}); a byte-level vocabulary must contain every "
            "byte, or text with that byte cannot be encoded"
        )
    rank_values = set(ranks.values())
    if len(rank_values) != len(ranks) or min(rank_values) < 0:
        raise InvalidInputError(f"encoding {name!r}: ranks must be distinct non-negative ints")
    for token, token_id in special_tokens.items():
        if not isinstance(token, str) or not token or type(token_id) is not int or token_id < 0:
            raise InvalidInputError(
                f"encoding {name!r}: special tokens must map non-empty str to a non-negative "
                f"int, got {token!r}: {token_id!r}"
            )
        if token_id in rank_values:
            raise InvalidInputError(
                f"encoding {name!r}: special token {token!r} has id {token_id}, which is "
                "already the rank of an ordinary token"
            )
    if len(set(special_tokens.values())) != len(special_tokens):
        raise InvalidInputError(f"encoding {name!r}: special token ids must be distinct")
    try:
        regex.compile(pattern)
    except (regex.error, TypeError) as error:
        raise InvalidInputError(f"encoding {name!r}: pattern does not compile: {error}") from None
    try:
        return tiktoken.Encoding(
            name,
            pat_str=pattern,
            mergeable_ranks=dict(ranks),
            special_tokens=dict(special_tokens),
            explicit_n_vocab=explicit_n_vocab,
        )
    except (AssertionError, ValueError) as error:
        raise InvalidInputError(f"tiktoken refused encoding {name!r}: {error}") from None


# ------------------------------------------------------------------- references


class ByteTokenizerConfig(Record):
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


# ---------------------------------------------------------------- pipeline stage


class TokenizedDocument(Record):
    """A document as token ids, keeping its id and metadata for lineage."""

    document_id: Annotated[str, Field(min_length=1)]
    token_ids: tuple[int, ...]
    metadata: Metadata = Field(default_factory=dict)


class TokenizeConfig(Record):
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
