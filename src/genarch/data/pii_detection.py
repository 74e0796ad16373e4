"""PII and secret detection: typed spans of personal data and secrets in a text.

:func:`find_pii` returns :class:`PiiSpan` records; redacting them is
:mod:`genarch.data.pii_redaction`'s job. Every detector is a bounded regular
expression (linear time, even on one enormous line; the boundary lookbehind
comes after the first character, so the regex engine's fast first-character
scan applies) followed by a validator, so checksummed types are only reported
when the checksum holds:

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
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from pydantic import Field

from genarch.errors import InvalidInputError
from genarch.schemas import Record
from genarch.validation import describe

__all__ = ["PII_TYPES", "PiiSpan", "PiiType", "find_pii", "iban_checksum_ok"]

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

_PRIORITY = {name: rank for rank, name in enumerate(PII_TYPES)}


class PiiSpan(Record):
    """One piece of PII found in a text: ``text == source[start:end]``."""

    type: PiiType
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    text: str


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
            # Possessive digit runs: a run of digits splits into groups one way only,
            # so a long run fails at once instead of trying every split (which took
            # 60 s per MB of "+1111...1 "); a 3-digit match is never a phone anyway.
            r"\+(?<![\w+]\+)[1-9]\d{0,2}+(?:[ .-]?+(?:\(\d{1,5}+\)|\d{1,5}+)){1,6}"
            r"(?![\w-]|[.-]\d)"
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


def check_types(types: Iterable[str] | None, where: str) -> frozenset[str]:
    """The entity types asked for (all when ``None``); raises InvalidInputError on an unknown one."""
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


def require_text(text: object, where: str) -> str:
    """``text``, if it is a str; raises InvalidInputError otherwise."""
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
    require_text(text, "find_pii")
    return find_spans(text, check_types(types, "find_pii"))


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


def find_spans(text: str, types: frozenset[str]) -> tuple[PiiSpan, ...]:
    """:func:`find_pii` without checking its arguments (``types`` already checked)."""
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
