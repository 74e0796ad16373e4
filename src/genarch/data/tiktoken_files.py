"""Standard tiktoken encodings and ``.tiktoken`` files, offline.

Standard encodings never trigger a download. They are read from a file you
give, or from tiktoken's own cache directory (``TIKTOKEN_CACHE_DIR``, else
``DATA_GYM_CACHE_DIR``, else ``<tmp>/data-gym-cache``; the file name is the
SHA-1 of the download URL, as tiktoken names it). When neither has the file,
:class:`~genarch.errors.NotFoundError` says where to put it. Every file is
checked against its published SHA-256.

:func:`build_encoding` validates ranks before tiktoken sees them (all 256
single bytes present, distinct ranks, no special-token collisions), because
tiktoken's Rust core panics on such input instead of raising.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import regex
import tiktoken

from genarch._io import sha256_file
from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.protocols import PathLike
from genarch.schemas import Record
from genarch.validation import describe

__all__ = [
    "CL100K_PATTERN",
    "GPT2_PATTERN",
    "O200K_PATTERN",
    "STANDARD_ENCODINGS",
    "StandardEncoding",
    "build_encoding",
    "empty_match_problem",
    "load_standard_encoding",
    "read_tiktoken_file",
    "standard_encoding_cache_paths",
    "tiktoken_file_bytes",
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


def tiktoken_file_bytes(ranks: Mapping[bytes, int]) -> bytes:
    """Mergeable ranks in tiktoken's format (``base64(token) rank`` per line), sorted by rank.

    Examples:
        >>> tiktoken_file_bytes({b"a": 0, b"b": 1})
        b'YQ== 0\\nYg== 1\\n'
    """
    lines = [
        base64.b64encode(token) + b" " + str(rank).encode()
        for token, rank in sorted(ranks.items(), key=lambda item: item[1])
    ]
    return b"\n".join(lines) + b"\n"


def write_tiktoken_file(ranks: Mapping[bytes, int], path: PathLike) -> None:
    """Write mergeable ranks in tiktoken's format, sorted by rank (not atomic by itself)."""
    Path(path).write_bytes(tiktoken_file_bytes(ranks))


# Texts a split pattern is tried on: every ASCII character, other whitespace,
# letters, marks, digits and symbols of other scripts, contractions and specials.
_EMPTY_MATCH_PROBES = (
    "",
    "".join(map(chr, range(128))),
    "Hello, world! It's 2024: x=1.5e-3; I'M here\u00a0now\u2003\u3000.\r\n\n\t end ",
    "caf\u00e9 nai\u0308ve \u65e5\u672c\u8a9e \u0645\u0631\u062d\u0628\u0627 "
    "\u041f\u0440\u0438\u0432\u0435\u0442 \U0001f600\U0001f44d\u200d 123456789 <|endoftext|>",
)


def empty_match_problem(pattern: str) -> str | None:
    r"""Why ``pattern`` cannot split text for BPE, or None when it can.

    A split pattern must consume at least one character with every match:
    tiktoken's Rust core *panics* on an empty match (``"a*"``, ``"x?"``,
    ``"\b"``, ``""``) with an exception that ``except Exception`` does not
    catch. Whether a regex can match the empty string somewhere is not decidable
    from its text in general, so the pattern is tried on probe texts (every
    ASCII character, other whitespace, several scripts, emoji, digits);
    :class:`~genarch.data.tiktoken_tokenizer.TiktokenTokenizer` still turns a
    panic on other text into :class:`~genarch.errors.InvalidInputError`.

    Examples:
        >>> empty_match_problem(CL100K_PATTERN) is None
        True
        >>> print(empty_match_problem("x?"))
        the split pattern 'x?' matches the empty string (at position 0 of ''); every match must consume at least one character
    """
    try:
        compiled = regex.compile(pattern)
    except (regex.error, TypeError) as error:
        return f"the split pattern does not compile: {error}"
    for probe in _EMPTY_MATCH_PROBES:
        for match in compiled.finditer(probe):
            if match.start() == match.end():
                shown = probe if len(probe) <= 12 else probe[:8] + "..."
                return (
                    f"the split pattern {pattern!r} matches the empty string (at position "
                    f"{match.start()} of {shown!r}); every match must consume at least one "
                    "character"
                )
    return None


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
            rank, or the pattern does not compile or can match the empty string
            (see :func:`empty_match_problem`).
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
    problem = empty_match_problem(pattern)
    if problem is not None:
        raise InvalidInputError(f"encoding {name!r}: {problem}")
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
