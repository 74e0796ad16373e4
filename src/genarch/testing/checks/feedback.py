"""Checks for the feedback layer: :class:`~genarch.protocols.FeedbackLoop`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from genarch.errors import NotFoundError
from genarch.protocols import FeedbackLoop
from genarch.schemas import StoredFeedback
from genarch.testing._compare import assert_same
from genarch.testing._kit import Check, expect_genarch_error, failure, require, run_checks

__all__ = ["check_feedback_loop", "feedback_loop_checks"]


def feedback_loop_checks(
    make_loop: Callable[[], FeedbackLoop],
    examples: Sequence[Any],
    *,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.FeedbackLoop`.

    Args:
        make_loop: builds a fresh, empty loop.
        examples: feedback records of every kind the loop supports.
        label: name shown in reports.
    """
    subject = label or type(make_loop()).__name__

    def record_then_get() -> None:
        loop = make_loop()
        ids = [loop.record(feedback) for feedback in examples]
        require(
            all(isinstance(i, str) and i for i in ids),
            f"expected record() to return non-empty str ids, got {ids!r}",
        )
        require(len(set(ids)) == len(ids), f"expected record() to return distinct ids, got {ids!r}")
        for feedback_id, feedback in zip(ids, examples, strict=True):
            stored = loop.get(feedback_id)
            require(
                isinstance(stored, StoredFeedback),
                f"expected get() to return StoredFeedback, got {type(stored).__name__}",
            )
            require(
                stored.id == feedback_id,
                f"expected get({feedback_id!r}).id to be {feedback_id!r}, got {stored.id!r}",
            )
            assert_same(stored.feedback, feedback, path=f"get({feedback_id!r}).feedback")

    def query_in_order_and_by_kind() -> None:
        loop = make_loop()
        for feedback in examples:
            loop.record(feedback)
        everything = loop.query()
        assert_same([s.feedback for s in everything], list(examples), path="query()")
        for kind in {f.kind for f in examples}:
            expected = [f for f in examples if f.kind == kind]
            assert_same(
                [s.feedback for s in loop.query(kind=kind)], expected, path=f"query({kind})"
            )
        limited = loop.query(limit=1)
        require(
            len(limited) == min(1, len(examples)),
            f"expected query(limit=1) to return {min(1, len(examples))} record(s), "
            f"got {len(limited)}",
        )

    def preferences_include_recorded_pairs() -> None:
        loop = make_loop()
        for feedback in examples:
            loop.record(feedback)
        pairs = loop.preferences()
        for feedback in examples:
            if feedback.kind == "preference":
                require(
                    any(
                        p.prompt == feedback.prompt
                        and p.chosen == feedback.chosen
                        and p.rejected == feedback.rejected
                        for p in pairs
                    ),
                    f"expected preferences() to hold the pair for {feedback.prompt!r}, "
                    f"got {len(pairs)} pair(s) without it",
                )

    def unknown_id_is_not_found() -> None:
        loop = make_loop()
        try:
            loop.get("no-such-feedback")
        except NotFoundError:
            return
        except Exception as error:
            raise failure(
                f"expected get(unknown id) to raise NotFoundError, got {type(error).__name__}"
            ) from error
        raise failure("expected get(unknown id) to raise NotFoundError, it returned")

    def rejects_wrong_feedback() -> None:
        loop = make_loop()
        expect_genarch_error(lambda: loop.record(object()), "record(object())")  # type: ignore[arg-type]

    checks = [
        record_then_get,
        query_in_order_and_by_kind,
        preferences_include_recorded_pairs,
        unknown_id_is_not_found,
        rejects_wrong_feedback,
    ]
    return [Check("FeedbackLoop", c.__name__, subject, c) for c in checks]


def check_feedback_loop(
    make_loop: Callable[[], FeedbackLoop], examples: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`feedback_loop_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(feedback_loop_checks(make_loop, examples, **options))
