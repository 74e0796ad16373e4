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

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar, overload

from genarch.errors import InvalidInputError

__all__ = ["checked_items", "checked_texts", "describe", "ensure_iterable", "require_instance"]

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
