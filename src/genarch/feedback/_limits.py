"""The size limit on text fields, shared by the feedback store and the review queue."""

from __future__ import annotations

from collections.abc import Iterable

from genarch.errors import InvalidInputError
from genarch.schemas import OutputRef

__all__ = ["check_text_sizes"]


def check_text_sizes(fields: Iterable[tuple[str, object]], *, limit: int, setting: str) -> None:
    """Refuse any text (or ``OutputRef`` URI) in ``fields`` over ``limit`` UTF-8 bytes.

    Args:
        fields: ``(name, value)`` pairs; the name is what the error shows.
        limit: the largest size allowed, in bytes.
        setting: the config field that sets ``limit``, named in the error.

    Raises:
        InvalidInputError: a text over the limit, or one that is not encodable
            as UTF-8 — naming the field.
    """
    for name, value in fields:
        text = value.uri if isinstance(value, OutputRef) else value
        if not isinstance(text, str):
            continue
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidInputError(f"{name}: not encodable as UTF-8 (lone surrogate?)") from None
        if size > limit:
            raise InvalidInputError(f"{name}: {size} bytes, over the limit of {limit} ({setting})")
