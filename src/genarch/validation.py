"""Small helpers that turn bad input into clear :class:`~genarch.errors.InvalidInputError`s.

They are public so that your own components can fail the way genarch's do.

Examples:
    >>> from genarch.validation import checked_items
    >>> list(checked_items(["a", "b"], str, where="MyCleaner.process"))
    ['a', 'b']
    >>> list(checked_items(["a", 3], str, where="MyCleaner.process"))
    Traceback (most recent call last):
    ...
    genarch.errors.InvalidInputError: MyCleaner.process expected items of type str, but item 1 is int: 3
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar, overload

from genarch.errors import InvalidInputError

__all__ = [
    "checked_items",
    "checked_texts",
    "describe",
    "ensure_iterable",
    "require_count",
    "require_instance",
    "require_text",
]

T = TypeVar("T")


def describe(value: object, limit: int = 60) -> str:
    """``type: repr`` of a value, shortened for error messages."""
    shown = repr(value)
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return f"{type(value).__name__}: {shown}"


def ensure_iterable(items: object, where: str) -> Iterable[Any]:
    """Return ``items`` if it is an iterable of records (a lone string or bytes is not).

    Raises:
        InvalidInputError: ``items`` is not iterable, or is a single ``str``/``bytes``
            (almost always a mistake for a stream of records).
    """
    if isinstance(items, str | bytes | bytearray):
        raise InvalidInputError(
            f"{where} expected an iterable of items, got a single {type(items).__name__}; "
            f"wrap it in a list: [{'text' if isinstance(items, str) else 'data'}]"
        )
    if not isinstance(items, Iterable):
        raise InvalidInputError(f"{where} expected an iterable of items, got {describe(items)}")
    return items


@overload
def checked_items(items: object, expected: type[T], where: str) -> Iterator[T]: ...


@overload
def checked_items(items: object, expected: tuple[type[Any], ...], where: str) -> Iterator[Any]: ...


def checked_items(
    items: object, expected: type[Any] | tuple[type[Any], ...], where: str
) -> Iterator[Any]:
    """Iterate over ``items`` lazily, checking each is an instance of ``expected``.

    The iterable itself is checked at once (not on first ``next``), so a wrong
    argument fails where the call is made.

    Raises:
        InvalidInputError: ``items`` is not an iterable, or an item has the wrong
            type (the message gives its position and value).
    """
    iterable = ensure_iterable(items, where)
    names = (
        " or ".join(t.__name__ for t in expected)
        if isinstance(expected, tuple)
        else expected.__name__
    )

    def generate() -> Iterator[Any]:
        for index, item in enumerate(iterable):
            if not isinstance(item, expected):
                raise InvalidInputError(
                    f"{where} expected items of type {names}, but item {index} is {describe(item)}"
                )
            yield item

    return generate()


def require_instance(value: object, expected: type[T], where: str) -> T:
    """Return ``value`` if it is an instance of ``expected``.

    Raises:
        InvalidInputError: naming what was expected and what arrived.
    """
    if not isinstance(value, expected):
        raise InvalidInputError(f"{where} expected a {expected.__name__}, got {describe(value)}")
    return value


def checked_texts(items: object, where: str) -> list[str]:
    """``items`` as a list of strings, checked at once (the texts a feature extractor reads).

    Raises:
        InvalidInputError: ``items`` is a single string or not a sequence, or an
            item is not a string (the message gives its position and value).
    """
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise InvalidInputError(
            f"{where} expected a sequence of str (wrap one text in a list), got {describe(items)}"
        )
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInputError(
                f"{where} expected str items, but item {index} is {describe(item)}"
            )
    return list(items)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def require_text(text: object, where: str, *, name: str = "text") -> str:
    """Return ``text`` if it is a ``str`` of valid Unicode (no lone surrogate).

    Every genarch entry point that reads text calls this, so they agree on what
    text is: a string that can be encoded as UTF-8. A lone surrogate (what
    ``bytes.decode(errors="surrogateescape")`` makes of undecodable bytes) is
    refused with its position, as the tokenisers refuse it.

    Raises:
        InvalidInputError: ``text`` is not a str (``bytes`` get a hint to decode
            them), or holds a lone surrogate.

    Examples:
        >>> require_text("café", "clean_text")
        'café'
        >>> require_text("ab\\udc80", "clean_text")
        Traceback (most recent call last):
        ...
        genarch.errors.InvalidInputError: clean_text: text holds a lone surrogate U+DC80 at position 2, which is not valid Unicode; decode the source with errors='replace' instead of 'surrogateescape'
    """
    if not isinstance(text, str):
        hint = " (decode bytes first: data.decode('utf-8'))" if isinstance(text, bytes) else ""
        raise InvalidInputError(f"{where} expected {name} as str, got {describe(text)}{hint}")
    if not text.isascii() and (found := _LONE_SURROGATE.search(text)) is not None:
        raise InvalidInputError(
            f"{where}: {name} holds a lone surrogate U+{ord(found.group()):04X} at position "
            f"{found.start()}, which is not valid Unicode; decode the source with "
            "errors='replace' instead of 'surrogateescape'"
        )
    return text


def require_count(
    value: object, where: str, name: str, *, minimum: int = 1, maximum: int | None = None
) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) in ``[minimum, maximum]``.

    Raises:
        InvalidInputError: another type, or a value out of range; the message
            names ``name`` and the accepted range.

    Examples:
        >>> require_count(8, "TokenDataset.random_batch", "batch_size", maximum=1024)
        8
        >>> require_count(True, "TokenDataset.random_batch", "batch_size")
        Traceback (most recent call last):
        ...
        genarch.errors.InvalidInputError: TokenDataset.random_batch expected batch_size as an int >= 1, got bool: True
    """
    bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    try:  # ints and integer scalars (numpy, torch) but not bools, floats or strings
        if isinstance(value, bool | float | str | bytes):
            raise TypeError
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInputError(
            f"{where} expected {name} as an int {bounds}, got {describe(value)}"
        ) from None
    if number < minimum or (maximum is not None and number > maximum):
        raise InvalidInputError(f"{where} expected {name} as an int {bounds}, got {number}")
    return number
