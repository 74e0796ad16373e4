"""The review queue's records: an item, an audit event, a page, a decision.

Import them from :mod:`genarch.feedback`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, field_validator

from genarch.schemas import Output, Record

__all__ = ["ReviewDecision", "ReviewEvent", "ReviewItem", "ReviewPage", "ReviewState"]

ReviewState = Literal["pending", "approved", "rejected", "corrected"]
"""Where an item stands: ``pending`` until one decision moves it to one of the others."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ReviewItem(Record):
    """One output under review, and its decision once it has one.

    ``correction``, ``reviewer``, ``reason`` and ``decided_at`` are ``None``
    while the item is pending; ``correction`` is set only on a ``corrected`` item.
    """

    id: Annotated[str, Field(min_length=1)]
    prompt: Annotated[str, Field(min_length=1)]
    response: Output
    model_name: str | None = None
    model_version: str | None = None
    response_id: str | None = None
    flags: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    """What evaluators flagged (``"toxicity"``, ``"ungrounded"``, ...)."""
    state: ReviewState = "pending"
    correction: Output | None = None
    reviewer: str | None = None
    reason: str | None = None
    submitted_at: AwareDatetime = Field(default_factory=_now)
    decided_at: AwareDatetime | None = None


class ReviewEvent(Record):
    """One entry of the audit trail: an item was submitted or decided.

    ``reviewer`` is ``None`` for a submission; ``correction`` is set only on a
    ``corrected`` decision.
    """

    seq: Annotated[int, Field(ge=1)]
    """The event's position in the trail (increasing, never reused)."""
    item_id: str
    action: Literal["submitted", "approved", "rejected", "corrected"]
    state: ReviewState
    """The item's state after the event."""
    reviewer: str | None = None
    reason: str | None = None
    correction: Output | None = None
    at: AwareDatetime


class ReviewPage(Record):
    """One page of items, oldest submission first, and the cursor of the next page."""

    items: tuple[ReviewItem, ...]
    next_cursor: str | None = None


class ReviewDecision(Record):
    """The arguments of a decision, validated before the database is touched."""

    item_id: Annotated[str, Field(min_length=1)]
    reviewer: Annotated[str, Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1)] | None = None
    correction: Output | None = None

    @field_validator("reviewer")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reviewer is blank")
        return value
