"""PII redaction and reversible pseudonymisation, for documents and single texts.

:func:`redact_pii` and the :class:`PiiRedactor` stage replace what
:func:`~genarch.data.pii_detection.find_pii` finds. Modes
(:class:`PiiRedactorConfig`): ``mask`` (``*`` per character),
``placeholder`` (``<EMAIL_1>``; the same value gets the same placeholder within
a document), ``hash`` (``<EMAIL#3f2a9c1b0d4e>``, a keyed HMAC-SHA256, linkable
across documents) and ``pseudonymize`` (``<EMAIL:v2:...>``), reversible with
:func:`deanonymize` and the same key.

Cryptography, all of it vetted primitives:

- **Key derivation.** The user's key (at least 16 bytes; a random
  ``secrets.token_hex(32)`` is best, a passphrase is stretched) goes through
  ``hashlib.scrypt`` (RFC 7914; N = 2**14, r = 8, p = 1, a fixed
  domain-separation salt so that the same key always gives the same tokens)
  into 96 bytes: a 64-byte AES-SIV key and a 32-byte HMAC key. The derived keys
  of the last few distinct keys are cached in process memory.
- **hash mode.** ``HMAC-SHA256(k_hash, TYPE || 0x00 || UTF-8 value)``,
  truncated to ``hash_length`` hex digits. Not reversible; stdlib only.
- **pseudonymize mode.** AES-SIV (RFC 5297, deterministic authenticated
  encryption; AES-256-SIV from the ``cryptography`` package, the ``pii``
  extra: ``pip install 'genarch[pii]'``) of the UTF-8 value, with the scheme
  label and the type as associated data. Token:
  ``<TYPE:v2:base32(siv tag || ciphertext)>`` in lower-case base32 without
  padding; it carries everything needed to restore the value, so there is no
  mapping table to store.

Threat model. The *key holder* is whoever runs redaction and may need to undo
it; the key never enters a config or a saved pipeline (pass it or set
``key_env``). An attacker who has the redacted text but not the key learns
where PII was, its type, whether two tokens stand for the same value (equal
values give equal tokens under one key: that is what makes joins and counts
work, and it allows frequency analysis) and, in ``pseudonymize`` mode, the
byte length of each value. Without the key they cannot read a value, forge a
token that :func:`deanonymize` accepts, or move a token to another type (all
fail authentication: :class:`~genarch.errors.IntegrityError`). Out of scope:
PII that detection misses (it stays in clear text), an attacker who holds the
key or can get chosen values redacted with it (they can confirm guesses),
guessing a weak key offline from a known value and its token (scrypt makes
each guess costly; a random key makes it hopeless), key storage and rotation,
and side channels.

Tokens made by genarch 0.1.0 and earlier (``<TYPE:base32>`` without ``v2:``)
used a home-made HMAC keystream cipher; :func:`deanonymize` refuses them with
an :class:`~genarch.errors.IntegrityError` that says to re-run redaction on the
original text.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

from genarch.configured import Configured
from genarch.data.pii_detection import (
    PII_TYPES,
    PiiSpan,
    PiiType,
    check_types,
    find_spans,
    require_text,
)
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, missing_dependency
from genarch.schemas import Config, Document, Record
from genarch.validation import checked_items, describe

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

__all__ = [
    "PiiRedactor",
    "PiiRedactorConfig",
    "Redaction",
    "RedactionMode",
    "deanonymize",
    "redact_pii",
]

RedactionMode = Literal["mask", "placeholder", "hash", "pseudonymize"]
"""How :class:`PiiRedactor` replaces a span."""


class Redaction(Record):
    """The redacted text and the spans (offsets into the *original* text) it replaced."""

    text: str
    spans: tuple[PiiSpan, ...]


# --------------------------------------------------------------- keyed tokens

_SCHEME = "v2"
# A token of this scheme (group 2 is "v2") or of the 0.1.0 one (group 2 is None).
_TOKEN = re.compile(r"<([A-Z][A-Z_]{1,31}):(?:(v2):)?([a-z2-7]{26,})>")
_KDF_SALT = b"genarch.pii/v2/scrypt"
_ASSOCIATED = b"genarch.pii/v2"
_SIV_KEY_BYTES = 64  # AES-256-SIV: two 256-bit AES keys
_HASH_KEY_BYTES = 32
_MIN_KEY_BYTES = 16


@functools.lru_cache(maxsize=8)
def _derive(key: bytes) -> bytes:
    """scrypt (RFC 7914) of the user's key: 96 bytes, split into the SIV and HMAC keys."""
    return hashlib.scrypt(
        key, salt=_KDF_SALT, n=2**14, r=8, p=1, dklen=_SIV_KEY_BYTES + _HASH_KEY_BYTES
    )


def _aes_siv(key: bytes, where: str) -> AESSIV:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV
    except ImportError:
        raise missing_dependency("cryptography", "pii", f"{where} (pseudonymize mode)") from None
    return AESSIV(key)


@dataclass(frozen=True)
class _Keys:
    siv: bytes
    hash: bytes

    @classmethod
    def derive(cls, key: bytes | str, where: str) -> _Keys:
        if isinstance(key, str):
            try:
                key = key.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInputError(
                    f"{where} expected a key that encodes as UTF-8, got a str with a lone surrogate"
                ) from None
        if not isinstance(key, bytes):
            raise InvalidInputError(f"{where} expected a key as bytes or str, got {describe(key)}")
        if len(key) < _MIN_KEY_BYTES:
            raise InvalidInputError(
                f"{where} needs a key of at least {_MIN_KEY_BYTES} bytes, got {len(key)}; "
                "generate one with secrets.token_hex(32)"
            )
        material = _derive(key)
        return cls(siv=material[:_SIV_KEY_BYTES], hash=material[_SIV_KEY_BYTES:])


def _plain(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def _keyed_hash(keys: _Keys, entity: str, value: str) -> str:
    message = entity.encode("ascii") + b"\x00" + _plain(value)
    return hmac.new(keys.hash, message, hashlib.sha256).hexdigest()


def _b32(sealed: bytes) -> str:
    return base64.b32encode(sealed).decode("ascii").rstrip("=").lower()


def _encrypt(cipher: AESSIV, entity: str, value: str) -> str:
    sealed = cipher.encrypt(_plain(value), [_ASSOCIATED, entity.encode("ascii")])
    return f"<{entity}:{_SCHEME}:{_b32(sealed)}>"


def _decrypt(cipher: AESSIV, entity: str, token: str) -> str | None:
    """The value sealed in ``token``, or None when it does not authenticate."""
    from cryptography.exceptions import InvalidTag

    try:
        sealed = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
        if _b32(sealed) != token:  # unused low bits set: an edited token, not ours
            return None
        plain = cipher.decrypt(sealed, [_ASSOCIATED, entity.encode("ascii")])
        return plain.decode("utf-8", "surrogatepass")
    except (ValueError, InvalidTag):  # bad base32 or UTF-8 (ValueError), or bad tag
        return None


def deanonymize(text: str, key: bytes | str, *, strict: bool = True) -> str:
    """Restore the values that ``pseudonymize`` mode replaced, using the same key.

    Args:
        text: text redacted in ``pseudonymize`` mode (possibly edited around the tokens).
        key: the key used to redact.
        strict: raise on a token that fails authentication (wrong key, edited
            token) or that genarch 0.1.0 made; with ``False`` such tokens are
            left as they are.

    Raises:
        InvalidInputError: ``text`` is not a str or the key is too short.
        IntegrityError: with ``strict``, a token that this key did not make,
            or one made by genarch 0.1.0's retired scheme (re-run redaction on
            the original text to replace it).
        MissingDependencyError: the ``cryptography`` package (extra ``pii``)
            is not installed.

    Examples:
        >>> key = "correct horse battery staple"
        >>> hidden = redact_pii("Write to ann@example.com", mode="pseudonymize", key=key).text
        >>> hidden.startswith("Write to <EMAIL:v2:")
        True
        >>> deanonymize(hidden, key)
        'Write to ann@example.com'
    """
    require_text(text, "deanonymize")
    cipher = _aes_siv(_Keys.derive(key, "deanonymize").siv, "deanonymize")

    def restore(match: re.Match[str]) -> str:
        entity, scheme, token = match.groups()
        if scheme is None:
            if strict:
                raise IntegrityError(
                    f"pseudonym {match.group(0)[:40]!r} at offset {match.start()} was made by "
                    "genarch 0.1.0's retired scheme (a home-made cipher), which deanonymize no "
                    "longer reads: re-run redact_pii(..., mode='pseudonymize') or PiiRedactor on "
                    "the original text to get v2 tokens (or pass strict=False to leave it as is)"
                )
            return match.group(0)
        value = _decrypt(cipher, entity, token)
        if value is None:
            if strict:
                raise IntegrityError(
                    f"pseudonym {match.group(0)[:40]!r} at offset {match.start()} does not "
                    "authenticate with this key: wrong key, or the token was edited"
                )
            return match.group(0)
        return value

    return _TOKEN.sub(restore, text)


# ------------------------------------------------------------------- redaction


class PiiRedactorConfig(Config):
    """Settings of :class:`PiiRedactor` and :func:`redact_pii`.

    Attributes:
        types: entity types to redact (default: all).
        mode: ``"mask"``, ``"placeholder"``, ``"hash"`` or ``"pseudonymize"``.
        mask_char: the character that replaces each masked character.
        hash_length: hex digits of the keyed hash kept in ``hash`` mode.
        key_env: environment variable read for the key in ``hash`` and
            ``pseudonymize`` modes when no key is passed; the key itself is
            never part of the config, so saved pipelines hold no secret.
    """

    types: tuple[PiiType, ...] = PII_TYPES
    mode: RedactionMode = "placeholder"
    mask_char: Annotated[str, Field(min_length=1, max_length=1)] = "*"
    hash_length: Annotated[int, Field(ge=8, le=64)] = 12
    key_env: Annotated[str, Field(min_length=1)] = "GENARCH_PII_KEY"

    @model_validator(mode="after")
    def _types_unique(self) -> Self:
        if not self.types:
            raise ValueError("choose at least one PII type")
        if len(set(self.types)) != len(self.types):
            raise ValueError(f"types repeat: {self.types}")
        return self


class PiiRedactor(Configured[PiiRedactorConfig]):
    """Replaces PII and secrets in each document's text (one document in, one out).

    The config never holds the key, so saved pipelines hold no secret.

    Args:
        config: a :class:`PiiRedactorConfig`; keyword arguments are shorthand for its fields.
        key: the secret for ``hash`` and ``pseudonymize`` modes (at least 16
            bytes); when omitted it is read from the environment variable
            ``config.key_env``.

    Raises:
        ConfigError: bad fields, or a keyed mode without a key.
        MissingDependencyError: ``pseudonymize`` mode without the
            ``cryptography`` package (``pip install 'genarch[pii]'``).

    Examples:
        >>> from genarch import Document
        >>> redactor = PiiRedactor(mode="placeholder")
        >>> doc = Document(id="1", text="ann@example.com wrote to bob@example.com and ann@example.com")
        >>> next(redactor.process([doc])).text
        '<EMAIL_1> wrote to <EMAIL_2> and <EMAIL_1>'
    """

    def __init__(
        self,
        config: PiiRedactorConfig | Mapping[str, Any] | None = None,
        *,
        key: bytes | str | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        config = self.config
        self._types = frozenset(config.types)
        self._keys: _Keys | None = None
        self._cipher: AESSIV | None = None
        if config.mode in ("hash", "pseudonymize"):
            if key is None:
                key = os.environ.get(config.key_env)
                if not key:
                    raise ConfigError(
                        f"mode {config.mode!r} needs a key: pass key=... or set the environment "
                        f"variable {config.key_env} (at least 16 bytes, e.g. secrets.token_hex(32))"
                    )
            try:
                self._keys = _Keys.derive(key, "PiiRedactor")
            except InvalidInputError as error:
                raise ConfigError(str(error)) from None
            if config.mode == "pseudonymize":
                self._cipher = _aes_siv(self._keys.siv, "PiiRedactor")

    @classmethod
    def from_config(
        cls, config: BaseModel | Mapping[str, Any], *, key: bytes | str | None = None
    ) -> Self:
        """Build from a config object or mapping (as saved in a pipeline).

        Raises:
            ConfigError: unknown or invalid fields, or a keyed mode without a key.
            MissingDependencyError: ``pseudonymize`` mode without ``cryptography``.
        """
        return cls(PiiRedactorConfig.coerce(config), key=key)

    def redact(self, text: str) -> Redaction:
        """Redact one text; return the new text and the spans replaced.

        Raises:
            InvalidInputError: ``text`` is not a str.
        """
        require_text(text, "PiiRedactor.redact")
        spans = find_spans(text, self._types)
        numbers: dict[tuple[str, str], int] = {}
        per_type: collections.Counter[str] = collections.Counter()
        pieces, position = [], 0
        for span in spans:
            pieces.append(text[position : span.start])
            pieces.append(self._replacement(span, numbers, per_type))
            position = span.end
        pieces.append(text[position:])
        return Redaction(text="".join(pieces), spans=spans)

    def _replacement(
        self,
        span: PiiSpan,
        numbers: dict[tuple[str, str], int],
        per_type: collections.Counter[str],
    ) -> str:
        mode = self.config.mode
        if mode == "mask":
            return self.config.mask_char * len(span.text)
        if mode == "placeholder":
            number = numbers.get((span.type, span.text))
            if number is None:
                per_type[span.type] += 1
                number = numbers[(span.type, span.text)] = per_type[span.type]
            return f"<{span.type}_{number}>"
        if mode == "hash":
            assert self._keys is not None  # set in __init__ for keyed modes
            digest = _keyed_hash(self._keys, span.type, span.text)
            return f"<{span.type}#{digest[: self.config.hash_length]}>"
        assert self._cipher is not None  # set in __init__ for pseudonymize mode
        return _encrypt(self._cipher, span.type, span.text)

    def process(self, items: Iterable[Document]) -> Iterator[Document]:
        """Yield each document with its PII replaced (same id and metadata).

        Raises:
            InvalidInputError: an item is not a Document.
        """
        return self.process_counting(items, collections.Counter())

    def process_counting(
        self, items: Iterable[Document], counts: collections.Counter[str]
    ) -> Iterator[Document]:
        """:meth:`process`, adding ``pii:<TYPE>`` to ``counts`` for every span replaced."""
        documents = checked_items(items, Document, where="PiiRedactor.process")

        def run() -> Iterator[Document]:
            for document in documents:
                redaction = self.redact(document.text)
                for span in redaction.spans:
                    counts[f"pii:{span.type}"] += 1
                yield document.model_copy(update={"text": redaction.text})

        return run()


def redact_pii(
    text: str,
    *,
    mode: RedactionMode = "placeholder",
    types: Sequence[PiiType] | None = None,
    key: bytes | str | None = None,
) -> Redaction:
    """Redact PII in one text: the function form of :class:`PiiRedactor`.

    Raises:
        InvalidInputError: ``text`` is not a str, an unknown type, or a keyed
            mode without a key.
        MissingDependencyError: ``pseudonymize`` mode without the
            ``cryptography`` package (``pip install 'genarch[pii]'``).

    Examples:
        >>> redact_pii("card 4111 1111 1111 1111, ssn 123-45-6789", mode="mask").text
        'card *******************, ssn ***********'
    """
    require_text(text, "redact_pii")
    chosen = check_types(types, "redact_pii")
    config = PiiRedactorConfig(mode=mode, types=tuple(t for t in PII_TYPES if t in chosen))
    return PiiRedactor(config, key=key).redact(text)
