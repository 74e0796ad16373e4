"""PII redaction and reversible pseudonymisation, for documents and single texts.

:func:`redact_pii` and the :class:`PiiRedactor` stage replace what
:func:`~genarch.data.pii_detection.find_pii` finds. Modes
(:class:`PiiRedactorConfig`): ``mask`` (``*`` per character),
``placeholder`` (``<EMAIL_1>``; the same value gets the same placeholder within
a document), ``hash`` (``<EMAIL#3f2a9c1b0d4e>``, a keyed HMAC-SHA256, linkable
across documents) and ``pseudonymize`` (``<EMAIL:...>``), reversible with
:func:`deanonymize` and the same key.

Pseudonyms use SIV, deterministic authenticated encryption [Rogaway &
Shrimpton, "Deterministic Authenticated-Encryption", EUROCRYPT 2006] built
from HMAC-SHA256 alone: ``iv = HMAC(k_mac, type || value)[:16]``, ciphertext =
value XOR HMAC-SHA256-CTR(k_enc, iv). The token carries everything needed to
restore the value, so there is no mapping to store; only the key holder can
read it; equal values give equal tokens (what pseudonymisation wants), and a
wrong key or an edited token fails authentication
(:class:`~genarch.errors.IntegrityError`). Tokens reveal the value's length.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

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
from genarch.errors import ConfigError, IntegrityError, InvalidInputError
from genarch.schemas import Config, Document, Record
from genarch.validation import checked_items, describe

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

_TOKEN = re.compile(r"<([A-Z][A-Z_]{1,31}):([a-z2-7]{26,})>")
_IV_BYTES = 16


@dataclass(frozen=True)
class _Keys:
    mac: bytes
    enc: bytes
    hash: bytes

    @classmethod
    def derive(cls, key: bytes | str, where: str) -> _Keys:
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, bytes):
            raise InvalidInputError(f"{where} expected a key as bytes or str, got {describe(key)}")
        if len(key) < 16:
            raise InvalidInputError(
                f"{where} needs a key of at least 16 bytes, got {len(key)}; "
                "generate one with secrets.token_hex(32)"
            )

        def sub(label: str) -> bytes:
            return hmac.new(key, f"genarch.pii/{label}".encode(), hashlib.sha256).digest()

        return cls(mac=sub("siv-mac"), enc=sub("siv-enc"), hash=sub("hash"))

    def keystream(self, iv: bytes, length: int) -> bytes:
        blocks = (length + 31) // 32
        stream = b"".join(
            hmac.new(self.enc, iv + counter.to_bytes(4, "big"), hashlib.sha256).digest()
            for counter in range(blocks)
        )
        return stream[:length]

    def siv(self, entity: str, plain: bytes) -> bytes:
        message = entity.encode("ascii") + b"\x00" + plain
        return hmac.new(self.mac, message, hashlib.sha256).digest()[:_IV_BYTES]


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def _encrypt(keys: _Keys, entity: str, value: str) -> str:
    plain = value.encode("utf-8", "surrogatepass")
    iv = keys.siv(entity, plain)
    sealed = iv + _xor(plain, keys.keystream(iv, len(plain)))
    return f"<{entity}:{base64.b32encode(sealed).decode('ascii').rstrip('=').lower()}>"


def _decrypt(keys: _Keys, entity: str, token: str) -> str | None:
    padded = token.upper() + "=" * (-len(token) % 8)
    try:
        sealed = base64.b32decode(padded)
    except ValueError:
        return None
    iv, cipher = sealed[:_IV_BYTES], sealed[_IV_BYTES:]
    plain = _xor(cipher, keys.keystream(iv, len(cipher)))
    if len(iv) != _IV_BYTES or not hmac.compare_digest(iv, keys.siv(entity, plain)):
        return None
    return plain.decode("utf-8", "surrogatepass")


def deanonymize(text: str, key: bytes | str, *, strict: bool = True) -> str:
    """Restore the values that ``pseudonymize`` mode replaced, using the same key.

    Args:
        text: text redacted in ``pseudonymize`` mode (possibly edited around the tokens).
        key: the key used to redact.
        strict: raise on a token that fails authentication (wrong key, edited
            token); with ``False`` such tokens are left as they are.

    Raises:
        InvalidInputError: ``text`` is not a str or the key is too short.
        IntegrityError: with ``strict``, a token that this key did not make.

    Examples:
        >>> key = "correct horse battery staple"
        >>> hidden = redact_pii("Write to ann@example.com", mode="pseudonymize", key=key).text
        >>> hidden.startswith("Write to <EMAIL:")
        True
        >>> deanonymize(hidden, key)
        'Write to ann@example.com'
    """
    require_text(text, "deanonymize")
    keys = _Keys.derive(key, "deanonymize")

    def restore(match: re.Match[str]) -> str:
        value = _decrypt(keys, match.group(1), match.group(2))
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

    @classmethod
    def from_config(
        cls, config: BaseModel | Mapping[str, Any], *, key: bytes | str | None = None
    ) -> Self:
        """Build from a config object or mapping (as saved in a pipeline).

        Raises:
            ConfigError: unknown or invalid fields, or a keyed mode without a key.
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
        assert self._keys is not None  # set in __init__ for keyed modes
        if mode == "hash":
            message = (
                span.type.encode("ascii") + b"\x00" + span.text.encode("utf-8", "surrogatepass")
            )
            digest = hmac.new(self._keys.hash, message, hashlib.sha256).hexdigest()
            return f"<{span.type}#{digest[: self.config.hash_length]}>"
        return _encrypt(self._keys, span.type, span.text)

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

    Examples:
        >>> redact_pii("card 4111 1111 1111 1111, ssn 123-45-6789", mode="mask").text
        'card *******************, ssn ***********'
    """
    require_text(text, "redact_pii")
    chosen = check_types(types, "redact_pii")
    config = PiiRedactorConfig(mode=mode, types=tuple(t for t in PII_TYPES if t in chosen))
    return PiiRedactor(config, key=key).redact(text)
