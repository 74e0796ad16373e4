"""Feedback records: ratings, corrections, preferences, their stored form, filters, pages.

Also :class:`Evaluation`, the scores an evaluator gives one output.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, ValidationInfo, field_validator, model_validator

from genarch.schemas._base import Metadata, Record, utc_now

__all__ = [
    "MAX_PAGE_SIZE",
    "Correction",
    "Evaluation",
    "Feedback",
    "FeedbackFilter",
    "FeedbackKind",
    "FeedbackPage",
    "Output",
    "OutputRef",
    "Preference",
    "Rating",
    "StoredFeedback",
]


FeedbackKind = Literal["rating", "correction", "preference"]
"""The kinds of feedback: the ``kind`` field of :data:`Feedback`."""


class OutputRef(Record):
    """An output that is not inline text (an image, a table): a reference and its media type.

    ``uri`` is whatever locates the output for you — a URI or an id in your own
    artefact store; genarch stores the reference, never the bytes.
    """

    uri: Annotated[str, Field(min_length=1)]
    media_type: Annotated[str, Field(pattern=r"^[\w.+-]+/[\w.+-]+$")]


Output = str | OutputRef
"""What a model produced: inline text, or a reference to a non-text output."""


class _FeedbackBase(Record):
    """Fields every piece of feedback carries: who, about which model and response, when."""

    prompt: Annotated[str, Field(min_length=1)]
    model_name: str | None = None
    model_version: str | None = None
    response_id: str | None = None
    user: str | None = None
    created_at: AwareDatetime = Field(default_factory=utc_now)
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("created_at")
    @classmethod
    def _in_utc(cls, value: _dt.datetime) -> _dt.datetime:
        return value.astimezone(_dt.UTC)


class Rating(_FeedbackBase):
    """A user's score for one output, between 0 (bad) and 1 (good)."""

    kind: Literal["rating"] = "rating"
    output: Output
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    comment: str | None = None


class Correction(_FeedbackBase):
    """A user's corrected version of an output (it must differ from the output)."""

    kind: Literal["correction"] = "correction"
    output: Output
    corrected: Output

    @field_validator("corrected")
    @classmethod
    def _changes_something(cls, value: Output, info: ValidationInfo) -> Output:
        if value == info.data.get("output"):
            raise ValueError("corrected is the same as output")
        return value


class Preference(_FeedbackBase):
    """A pairwise preference: for ``prompt``, ``chosen`` is better than ``rejected``."""

    kind: Literal["preference"] = "preference"
    chosen: Output
    rejected: Output

    @field_validator("rejected")
    @classmethod
    def _differs_from_chosen(cls, value: Output, info: ValidationInfo) -> Output:
        if value == info.data.get("chosen"):
            raise ValueError("rejected is the same as chosen")
        return value


Feedback = Annotated[Rating | Correction | Preference, Field(discriminator="kind")]
"""Any piece of feedback; the ``kind`` field tells which."""


class StoredFeedback(Record):
    """Feedback as a store keeps it: with its id and the time the store recorded it.

    ``feedback.created_at`` is when the feedback was given; ``recorded_at`` when
    the store committed it. (``created_at`` on this record is the pre-0.x
    spelling of ``recorded_at`` and still reads, with a ``DeprecationWarning``.)
    """

    id: Annotated[str, Field(min_length=1)]
    feedback: Feedback
    recorded_at: AwareDatetime = Field(default_factory=utc_now)

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "created_at" in data and "recorded_at" not in data:
            warnings.warn(
                "StoredFeedback.created_at is deprecated and will be removed in the next "
                "release: use StoredFeedback.recorded_at",
                DeprecationWarning,
                stacklevel=2,
            )
            data = {**data, "recorded_at": data["created_at"]}
            del data["created_at"]
        return data

    @property
    def created_at(self) -> _dt.datetime:
        """Deprecated: use :attr:`recorded_at`."""
        warnings.warn(
            "StoredFeedback.created_at is deprecated and will be removed in the next "
            "release: use StoredFeedback.recorded_at",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.recorded_at


class FeedbackFilter(Record):
    """Which feedback a query selects; every field left ``None`` selects everything.

    ``since`` is inclusive and ``until`` exclusive, both on ``feedback.created_at``.
    ``user`` is the caller's user id (a store that pseudonymises users hashes it).
    """

    kind: FeedbackKind | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    model_name: str | None = None
    model_version: str | None = None
    response_id: str | None = None
    user: str | None = None

    def matches(self, feedback: Rating | Correction | Preference) -> bool:
        """Whether ``feedback`` (as recorded, with its raw user id) passes this filter."""
        equal = ("kind", "model_name", "model_version", "response_id", "user")
        if any(
            getattr(self, name) is not None and getattr(feedback, name) != getattr(self, name)
            for name in equal
        ):
            return False
        if self.since is not None and feedback.created_at < self.since:
            return False
        return self.until is None or feedback.created_at < self.until


class FeedbackPage(Record):
    """One page of a query: the records, oldest first, and the cursor of the next page.

    ``next_cursor`` is ``None`` on the last page; pass it back to ``query`` as
    ``cursor`` to read on. Cursors are opaque strings, valid for the store that
    made them.
    """

    items: tuple[StoredFeedback, ...]
    next_cursor: str | None = None


MAX_PAGE_SIZE = 1000
"""The largest ``limit`` a :class:`~genarch.protocols.FeedbackLoop` query accepts."""


class Evaluation(Record):
    """Scores an evaluator gave one output (higher is better unless documented)."""

    scores: dict[str, float]
    details: dict[str, str] = Field(default_factory=dict)
