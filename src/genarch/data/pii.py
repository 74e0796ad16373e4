"""PII and secret detection and redaction for documents.

:func:`find_pii` returns typed spans (:class:`PiiSpan`) of personal data and
secrets; :func:`redact_pii` and the :class:`PiiRedactor` stage replace them.
Every detector is a bounded regular expression (linear time, even on one
enormous line; the boundary lookbehind comes after the first character, so
the regex engine's fast first-character scan applies) followed by a validator, so checksummed types are only
reported when the checksum holds:

| type | detected | validated |
|---|---|---|
| `EMAIL` | `local@domain.tld` | dot rules of the local part |
| `PHONE` | `+CC ...` (E.164-style), `(415) 555-2671`, `020 7946 0958` | digit count 8-15 / 9-12 |
| `CREDIT_CARD` | 13-19 digits, consistently grouped | issuer prefix and length, Luhn |
| `IBAN` | compact or in groups of four | per-country length, mod-97 |
| `IP_ADDRESS` | IPv4 and IPv6 | :mod:`ipaddress` |
| `US_SSN` | `AAA-GG-SSSS` | area, group and serial ranges |
| `MAC_ADDRESS` | `00:1a:2b:3c:4d:5e`, `00-1A-...`, `001a.2b3c.4d5e` | consistent separators |
| `URL_CREDENTIALS` | a URL with `user:password@` (the whole URL) | |
| `API_KEY` | AWS key ids, GitHub, Slack, Stripe, Google, `sk-` keys | prefix and alphabet |
| `BEARER_TOKEN` | the token after `Bearer` | length and alphabet |
| `PRIVATE_KEY` | PEM `-----BEGIN ... PRIVATE KEY-----` blocks | BEGIN/END pairs |

Overlapping matches are resolved deterministically: the type earlier in
:data:`PII_TYPES` wins, then the longer span, then the earlier one.

Modes (:class:`PiiRedactorConfig`): ``mask`` (``*`` per character),
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
import bisect
import collections
import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, Field, model_validator

from genarch.errors import ConfigError, IntegrityError, InvalidInputError
from genarch.schemas import Config, Document, Record
from genarch.validation import checked_items, describe

__all__ = [
    "PII_TYPES",
    "PiiRedactor",
    "PiiRedactorConfig",
    "PiiSpan",
    "PiiType",
    "Redaction",
    "deanonymize",
    "find_pii",
    "iban_checksum_ok",
    "redact_pii",
]

PiiType = Literal[
    "PRIVATE_KEY",
    "URL_CREDENTIALS",
    "API_KEY",
    "BEARER_TOKEN",
    "EMAIL",
    "IBAN",
    "CREDIT_CARD",
    "US_SSN",
    "MAC_ADDRESS",
    "IP_ADDRESS",
    "PHONE",
]
PII_TYPES: tuple[PiiType, ...] = get_args(PiiType)
"""Every entity type, in the order that decides overlaps (earlier wins)."""

RedactionMode = Literal["mask", "placeholder", "hash", "pseudonymize"]

_PRIORITY = {name: rank for rank, name in enumerate(PII_TYPES)}


class PiiSpan(Record):
    """One piece of PII found in a text: ``text == source[start:end]``."""

    type: PiiType
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    text: str


class Redaction(Record):
    """The redacted text and the spans (offsets into the *original* text) it replaced."""

    text: str
    spans: tuple[PiiSpan, ...]


# ------------------------------------------------------------------ validators

Validator = Callable[[str], bool]


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_issuer_ok(digits: str) -> bool:
    n, two, four, six = len(digits), int(digits[:2]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if four == 6011 or two == 65 or 644 <= four // 10 <= 649 or 622126 <= six <= 622925:
        return 16 <= n <= 19  # Discover
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= four // 10 <= 305 or two in (36, 38, 39):  # Diners Club
        return 14 <= n <= 19
    if two == 62:  # UnionPay
        return 16 <= n <= 19
    return False


def _card_shaped(candidate: str) -> bool:
    """13-19 digits, grouped consistently (one separator kind, groups of 3-6 after 4)."""
    groups = re.split(r"[ -]", candidate)
    if len(set(re.findall(r"[ -]", candidate))) > 1:
        return False
    if len(groups) > 1 and (len(groups[0]) != 4 or any(not 3 <= len(g) <= 6 for g in groups[1:])):
        return False
    return 13 <= sum(len(g) for g in groups) <= 19


def _credit_card(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return _card_shaped(candidate) and _card_issuer_ok(digits) and _luhn(digits)


# Lengths of IBANs per country (SWIFT IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_checksum_ok(iban: str) -> bool:
    """ISO 7064 mod-97-10 check of an IBAN without spaces.

    Examples:
        >>> iban_checksum_ok("GB82WEST12345698765432"), iban_checksum_ok("GB82WEST12345698765433")
        (True, False)
    """
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _ssn(candidate: str) -> bool:
    area, group, serial = candidate.split("-")
    return (
        area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and candidate not in ("078-05-1120", "219-09-9999")  # published sample numbers
    )


def _ipv4(candidate: str) -> bool:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def _ipv6(candidate: str) -> bool:
    if sum(char in "0123456789abcdefABCDEF" for char in candidate.split("%")[0]) < 4:
        return False  # "1::2" is a slice, not an address
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _email(candidate: str) -> bool:
    local = candidate.split("@", 1)[0]
    return not (local.startswith(".") or local.endswith(".") or ".." in local)


def _phone_digits(low: int, high: int) -> Validator:
    def valid(candidate: str) -> bool:
        if candidate.count("(") != candidate.count(")"):
            return False
        return low <= sum(char.isdigit() for char in candidate) <= high

    return valid


def _token_like(candidate: str) -> bool:
    return any(char.isdigit() or char in "-._~+/" for char in candidate)


def _always(candidate: str) -> bool:
    return True


@dataclass(frozen=True)
class _Detector:
    type: PiiType
    pattern: re.Pattern[str]
    validate: Validator = _always
    group: int = 0  # the regex group that is the span
    # A candidate that fails validation but has this shape (a mistyped card number)
    # is no PII, yet claims its span so no other detector reports a piece of it.
    shaped: Validator | None = None
    # The pattern finds BEGIN and END markers; a span runs from the last BEGIN
    # to the next END (linear time, unlike a lazy regex over the block).
    paired: bool = False
    hint: str | None = None  # skip the regex when this substring is absent
    trim: str = ""  # characters stripped from the end of a match (sentence punctuation)


_HEX = "[0-9A-Fa-f]"
_DETECTORS: tuple[_Detector, ...] = (
    _Detector(
        "PRIVATE_KEY",
        re.compile(r"-----(BEGIN|END) (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----"),
        hint="PRIVATE KEY-----",
        paired=True,
    ),
    _Detector(
        "URL_CREDENTIALS",
        re.compile(
            r"[A-Za-z](?<![\w.+-].)[A-Za-z0-9+.-]{1,15}://[^\s:/?#@]{1,256}:[^\s/?#@]{1,256}@"
            r"[^\s/?#@]{1,256}(?:[/?#][^\s]{0,2048})?"
        ),
        hint="://",
        trim=".,;:!?)]}'\"",
    ),
    _Detector(
        "API_KEY",
        re.compile(
            r"(?<![A-Za-z0-9_])(?:"
            r"(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA)[A-Z2-7]{16}"
            r"|gh[pousr]_[A-Za-z0-9]{36,255}"
            r"|github_pat_[A-Za-z0-9_]{22,255}"
            r"|xox[abposr]-[A-Za-z0-9-]{10,250}"
            r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}"
            r"|AIza[0-9A-Za-z_-]{35}"
            r"|sk-(?:proj-)?[A-Za-z0-9_-]{32,200}"
            r")(?![A-Za-z0-9_])"
        ),
    ),
    _Detector(
        "BEARER_TOKEN",
        re.compile(r"[Bb](?<![\w-].)earer[ \t]{1,8}([A-Za-z0-9._~+/-]{16,4096}=*)(?![\w.~+/=-])"),
        validate=_token_like,
        group=1,
        hint="earer",
    ),
    _Detector(
        "EMAIL",
        re.compile(
            r"[A-Za-z0-9._%+-](?<![\w.%+-].)[A-Za-z0-9._%+-]{0,63}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
            r"(?![\w-]|\.[A-Za-z0-9])"
        ),
        validate=_email,
        hint="@",
    ),
    _Detector(
        "IBAN",
        re.compile(r"[A-Z](?<![A-Za-z0-9].)[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}"),
        # validated and cut to the country's length in _iban_span
    ),
    _Detector(
        "CREDIT_CARD",
        re.compile(r"\d(?<![\w.-]\d)(?:[ -]?\d){12,18}(?![\w-]|\.\d)"),
        validate=_credit_card,
        shaped=_card_shaped,
    ),
    _Detector(
        "US_SSN",
        re.compile(r"\d(?<![\w-]\d)\d{2}-\d{2}-\d{4}(?![\w-])"),
        validate=_ssn,
    ),
    _Detector(
        "MAC_ADDRESS",
        re.compile(
            rf"(?<![\w:.-])(?:{_HEX}{{2}}([:-]){_HEX}{{2}}(?:\1{_HEX}{{2}}){{4}}"
            rf"|{_HEX}{{4}}\.{_HEX}{{4}}\.{_HEX}{{4}})(?![\w:-]|\.\w)"
        ),
    ),
    _Detector(
        "IP_ADDRESS",
        re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d)"),
        validate=_ipv4,
    ),
    _Detector(
        "IP_ADDRESS",
        re.compile(
            r"(?<![\w:.%])(?=[0-9A-Fa-f:]{0,39}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:.]{2,45}"
            r"(?:%[A-Za-z0-9_.]{1,16})?(?![\w:%])"
        ),
        validate=_ipv6,
        hint=":",
        trim=".",
    ),
    _Detector(
        "PHONE",
        re.compile(
            r"\+(?<![\w+]\+)[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,5}\)|\d{1,5})){1,6}(?![\w-]|[.-]\d)"
        ),
        validate=_phone_digits(8, 15),
        hint="+",
    ),
    _Detector(
        "PHONE",
        re.compile(
            r"(?<![\w+.-])(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|[.-]\d)"
        ),
    ),
    _Detector(
        "PHONE",
        re.compile(
            r"(?<![\w+/.:-])(?:0[1-9]\d{0,3}|\(0[1-9]\d{0,3}\))(?:[ ./-]\d{2,8}){1,4}"
            r"(?![\w/:-]|[.-]\d)"
        ),
        validate=_phone_digits(9, 12),
    ),
)


def _iban_span(text: str, start: int, end: int) -> tuple[int, bool] | None:
    """End and checksum verdict of the IBAN-shaped text at ``start``, cut to its country's length.

    None when the text is not IBAN-shaped (unknown country, wrong length).
    """
    expected = _IBAN_LENGTHS.get(text[start : start + 2])
    if expected is None:
        return None
    collected, position = 0, start
    while position < end and collected < expected:
        if text[position] != " ":
            collected += 1
        position += 1
    if collected != expected or (position < len(text) and text[position].isalnum()):
        return None
    return position, iban_checksum_ok(text[start:position].replace(" ", ""))


def _check_types(types: Iterable[str] | None, where: str) -> frozenset[str]:
    if types is None:
        return frozenset(PII_TYPES)
    if isinstance(types, str):
        types = (types,)
    chosen = frozenset(types)
    unknown = chosen - set(PII_TYPES)
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown PII type(s) {sorted(map(str, unknown))}; choose from {list(PII_TYPES)}"
        )
    return chosen


def _require_text(text: object, where: str) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"{where} expected text as str, got {describe(text)}")
    return text


def find_pii(text: str, types: Iterable[PiiType] | None = None) -> tuple[PiiSpan, ...]:
    """Find PII and secrets in ``text``, without overlaps, in text order.

    Args:
        text: the text to scan.
        types: the entity types to look for (default: all of :data:`PII_TYPES`).

    Raises:
        InvalidInputError: ``text`` is not a str, or an unknown type is asked for.

    Examples:
        >>> for span in find_pii("Mail bob@example.org or call +44 20 7946 0958."):
        ...     print(span.type, span.start, span.end, span.text)
        EMAIL 5 20 bob@example.org
        PHONE 29 45 +44 20 7946 0958
    """
    _require_text(text, "find_pii")
    return _find(text, _check_types(types, "find_pii"))


def _spans(detector: _Detector, text: str) -> Iterator[tuple[int, int]]:
    if not detector.paired:
        for match in detector.pattern.finditer(text):
            yield match.span(detector.group)
        return
    begin: int | None = None
    for match in detector.pattern.finditer(text):
        if match.group(1) == "BEGIN":
            begin = match.start()
        elif begin is not None:
            yield begin, match.end()
            begin = None


def _find(text: str, types: frozenset[str]) -> tuple[PiiSpan, ...]:
    candidates: list[tuple[int, int, int, str]] = []  # (start, end, priority, type)
    for detector in _DETECTORS:
        if detector.type not in types or (detector.hint and detector.hint not in text):
            continue
        for start, end in _spans(detector, text):
            if detector.trim:
                while end > start and text[end - 1] in detector.trim:
                    end -= 1
            entity = detector.type
            if entity == "IBAN":
                verdict = _iban_span(text, start, end)
                if verdict is None:
                    continue
                end, valid = verdict
            else:
                candidate = text[start:end]
                valid = detector.validate(candidate)
                if not valid and not (detector.shaped and detector.shaped(candidate)):
                    continue
            candidates.append((start, end, _PRIORITY[entity], entity if valid else ""))
    # Deterministic overlap resolution: priority, then length, then position.
    candidates.sort(key=lambda c: (c[2], c[0] - c[1], c[0]))
    chosen: list[tuple[int, int, int, str]] = []  # non-overlapping, sorted by start
    for found in candidates:
        at = bisect.bisect_left(chosen, found)
        if at > 0 and chosen[at - 1][1] > found[0]:
            continue  # overlaps the span before it
        if at < len(chosen) and chosen[at][0] < found[1]:
            continue  # overlaps the span after it
        chosen.insert(at, found)
    return tuple(
        PiiSpan(type=t, start=s, end=e, text=text[s:e])
        for s, e, _, t in chosen
        if t  # mistyped cards and IBANs only claim their span
    )


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
    _require_text(text, "deanonymize")
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


class PiiRedactor:
    """Replaces PII and secrets in each document's text (one document in, one out).

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
        config: PiiRedactorConfig | None = None,
        *,
        key: bytes | str | None = None,
        **fields: Any,
    ) -> None:
        config = PiiRedactorConfig.resolve(config, fields)
        self._config = config
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

    @property
    def config(self) -> PiiRedactorConfig:
        """The frozen configuration (never holds the key)."""
        return self._config

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
        _require_text(text, "PiiRedactor.redact")
        spans = _find(text, self._types)
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
        mode = self._config.mode
        if mode == "mask":
            return self._config.mask_char * len(span.text)
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
            return f"<{span.type}#{digest[: self._config.hash_length]}>"
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

    def __repr__(self) -> str:
        return f"PiiRedactor({self._config!r})"


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
    _require_text(text, "redact_pii")
    chosen = _check_types(types, "redact_pii")
    config = PiiRedactorConfig(mode=mode, types=tuple(t for t in PII_TYPES if t in chosen))
    return PiiRedactor(config, key=key).redact(text)
