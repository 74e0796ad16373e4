"""The feedback conformance kit fails stores that break the FeedbackLoop contract."""

from __future__ import annotations

import pytest

from fakes import InMemoryFeedback, reopen_feedback
from genarch import ConformanceError
from genarch.protocols import FeedbackLoop
from genarch.schemas import Correction, Feedback, FeedbackFilter, FeedbackPage, Preference, Rating
from genarch.testing import check_feedback_loop

EXAMPLES = [
    Rating(prompt="2+2?", output="4", score=1.0),
    Correction(prompt="capital?", output="Lyon", corrected="Paris"),
    Preference(prompt="greet", chosen="Hello!", rejected="go away"),
]


class ForgetsNothing(InMemoryFeedback):
    def forget_user(self, user: str) -> int:
        return sum(1 for item in self.storage if item.feedback.user == user)


class RepeatsTheLastRecordOfAPage(InMemoryFeedback):
    def query(
        self, filters: FeedbackFilter | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> FeedbackPage:
        page = super().query(filters, limit=limit, cursor=cursor)
        if page.next_cursor is None or len(page.items) < 2:
            return page
        return page.model_copy(update={"next_cursor": f"after:{page.items[-2].id}"})


class CrashesOnBadInput(InMemoryFeedback):
    def record(self, feedback: Feedback) -> str:
        feedback.prompt.strip()  # AttributeError on a non-record
        return super().record(feedback)


class IgnoresTheUserFilter(InMemoryFeedback):
    def query(
        self, filters: FeedbackFilter | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> FeedbackPage:
        plain = filters.model_copy(update={"user": None}) if filters else None
        return super().query(plain, limit=limit, cursor=cursor)


def loses_everything_on_reopen(closed: FeedbackLoop) -> FeedbackLoop:
    return InMemoryFeedback()


def failures(error: ConformanceError) -> set[str]:
    return {name for name, _ in error.failures}


@pytest.mark.parametrize(
    ("store", "reopen", "check"),
    [
        (ForgetsNothing, reopen_feedback, "forget_user_removes_every_record_of_that_user"),
        (RepeatsTheLastRecordOfAPage, reopen_feedback, "pagination_covers_every_record_once"),
        (CrashesOnBadInput, reopen_feedback, "rejects_wrong_feedback"),
        (IgnoresTheUserFilter, reopen_feedback, "filters_select_what_they_say"),
        (InMemoryFeedback, loses_everything_on_reopen, "reopened_store_holds_what_was_recorded"),
    ],
)
def test_a_broken_feedback_store_is_reported(store, reopen, check) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConformanceError) as caught:
        check_feedback_loop(store, EXAMPLES, reopen=reopen)
    assert check in failures(caught.value)


def test_the_in_memory_fake_passes_the_feedback_kit() -> None:
    check_feedback_loop(InMemoryFeedback, EXAMPLES, reopen=reopen_feedback)
