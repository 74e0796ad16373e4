"""Checks for the feedback layer: :class:`~genarch.protocols.FeedbackLoop`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from genarch.errors import InvalidInputError, NotFoundError
from genarch.protocols import FeedbackLoop
from genarch.schemas import (
    MAX_PAGE_SIZE,
    Correction,
    FeedbackFilter,
    Preference,
    Rating,
    StoredFeedback,
)
from genarch.testing._compare import assert_same
from genarch.testing._kit import Check, failure, require, run_checks

__all__ = ["check_feedback_loop", "feedback_loop_checks"]

AnyFeedback = Rating | Correction | Preference
_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _varied(examples: Sequence[AnyFeedback], copies: int = 3) -> list[AnyFeedback]:
    """The examples, repeated, with users, models, responses and times that filters tell apart."""
    varied = []
    for i in range(copies * len(examples)):
        example = examples[i % len(examples)]
        varied.append(
            example.model_copy(
                update={
                    "user": f"user-{i % 2}",
                    "model_name": f"model-{i % 3}",
                    "model_version": f"v{i % 2}",
                    "response_id": f"response-{i}",
                    "created_at": _START + dt.timedelta(minutes=i),
                }
            )
        )
    return varied


def _expect_invalid(action: Callable[[], object], what: str) -> None:
    try:
        action()
    except InvalidInputError:
        return
    except Exception as error:
        raise failure(
            f"{what}: expected InvalidInputError, got {type(error).__name__}({error})"
        ) from error
    raise failure(f"{what}: expected InvalidInputError, but nothing was raised")


def _without_user(stored: StoredFeedback) -> Any:
    return stored.feedback.model_copy(update={"user": None})


def _record_all(loop: FeedbackLoop, feedback: Sequence[AnyFeedback]) -> list[str]:
    return [loop.record(item) for item in feedback]


def feedback_loop_checks(
    make_loop: Callable[[], FeedbackLoop],
    examples: Sequence[Any],
    *,
    reopen: Callable[[FeedbackLoop], FeedbackLoop] | None = None,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.FeedbackLoop`.

    Args:
        make_loop: builds a fresh, empty loop.
        examples: feedback records of every kind the loop supports.
        reopen: given a loop that has been closed, opens a new one over the
            same storage (for the durability check; left out when ``None``).
        label: name shown in reports.
    """
    subject = label or type(make_loop()).__name__
    varied = _varied(examples)

    def record_then_get() -> None:
        with make_loop() as loop:
            ids = _record_all(loop, varied)
            require(
                all(isinstance(i, str) and i for i in ids),
                f"expected record() to return non-empty str ids, got {ids!r}",
            )
            require(len(set(ids)) == len(ids), f"expected distinct ids, got {ids!r}")
            pseudonyms: dict[str | None, str | None] = {}
            for feedback_id, feedback in zip(ids, varied, strict=True):
                stored = loop.get(feedback_id)
                require(
                    isinstance(stored, StoredFeedback),
                    f"expected get() to return StoredFeedback, got {type(stored).__name__}",
                )
                require(stored.id == feedback_id, f"get({feedback_id!r}).id is {stored.id!r}")
                assert_same(
                    _without_user(stored),
                    feedback.model_copy(update={"user": None}),
                    path=f"get({feedback_id!r}).feedback",
                )
                seen = pseudonyms.setdefault(feedback.user, stored.feedback.user)
                require(
                    seen == stored.feedback.user,
                    f"user {feedback.user!r} was stored as both {seen!r} and "
                    f"{stored.feedback.user!r}: a pseudonym must be stable",
                )

    def filters_select_what_they_say() -> None:
        with make_loop() as loop:
            ids = _record_all(loop, varied)
            filters = [
                FeedbackFilter(),
                *(FeedbackFilter(kind=kind) for kind in ("rating", "correction", "preference")),
                FeedbackFilter(since=_START + dt.timedelta(minutes=2)),
                FeedbackFilter(until=_START + dt.timedelta(minutes=2)),
                FeedbackFilter(model_name="model-1", model_version="v0"),
                FeedbackFilter(response_id="response-1"),
                FeedbackFilter(user="user-1"),
                FeedbackFilter(user="nobody"),
            ]
            for selected in filters:
                expected = [i for i, f in zip(ids, varied, strict=True) if selected.matches(f)]
                got = [s.id for s in loop.scan(selected)]
                shown = selected.model_dump(exclude_none=True)
                require(got == expected, f"scan({shown}) gave {got}, expected {expected}")
                page = loop.query(selected, limit=MAX_PAGE_SIZE)
                got = [s.id for s in page.items]
                require(got == expected, f"query({shown}) gave {got}, expected {expected}")

    def pagination_covers_every_record_once() -> None:
        with make_loop() as loop:
            ids = _record_all(loop, varied)
            for size in (1, 2, len(ids), len(ids) + 1):
                seen: list[str] = []
                cursor: str | None = None
                for _ in range(len(ids) + 2):
                    page = loop.query(limit=size, cursor=cursor)
                    require(
                        len(page.items) <= size,
                        f"query(limit={size}) returned {len(page.items)} records",
                    )
                    seen += [s.id for s in page.items]
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                require(
                    seen == ids,
                    f"following the cursors with limit={size} gave {seen}, expected {ids}",
                )

    def out_of_range_limit_and_foreign_cursor_are_invalid() -> None:
        with make_loop() as loop:
            _record_all(loop, varied[:2])
            _expect_invalid(lambda: loop.query(limit=0), "query(limit=0)")
            _expect_invalid(
                lambda: loop.query(limit=MAX_PAGE_SIZE + 1), f"query(limit={MAX_PAGE_SIZE + 1})"
            )
            _expect_invalid(lambda: loop.query(cursor="not-a-cursor"), "query(cursor=garbage)")

    def forget_user_removes_every_record_of_that_user() -> None:
        with make_loop() as loop:
            ids = _record_all(loop, varied)
            theirs = [i for i, f in zip(ids, varied, strict=True) if f.user == "user-0"]
            removed = loop.forget_user("user-0")
            require(
                removed == len(theirs),
                f"forget_user('user-0') said {removed} rows went, expected {len(theirs)}",
            )
            left = [s.id for s in loop.scan()]
            require(
                left == [i for i in ids if i not in theirs],
                f"after forget_user, the store holds {left}",
            )
            require(not loop.query(FeedbackFilter(user="user-0")).items, "user-0 still queries")
            for feedback_id in theirs:
                try:
                    loop.get(feedback_id)
                except NotFoundError:
                    continue
                raise failure(f"get({feedback_id!r}) still finds a forgotten user's feedback")
            again = loop.forget_user("user-0")
            require(again == 0, f"forgetting a forgotten user said {again} rows went")

    def unknown_id_is_not_found() -> None:
        with make_loop() as loop:
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
        with make_loop() as loop:
            _expect_invalid(lambda: loop.record(object()), "record(object())")  # type: ignore[arg-type]
            _expect_invalid(lambda: loop.record("text"), "record('text')")  # type: ignore[arg-type]
            left = list(loop.scan())
            require(not left, f"rejected input left {len(left)} record(s) behind")

    checks: list[Callable[[], None]] = [
        record_then_get,
        filters_select_what_they_say,
        pagination_covers_every_record_once,
        out_of_range_limit_and_foreign_cursor_are_invalid,
        forget_user_removes_every_record_of_that_user,
        unknown_id_is_not_found,
        rejects_wrong_feedback,
    ]
    if reopen is not None:
        opener = reopen

        def reopened_store_holds_what_was_recorded() -> None:
            loop = make_loop()
            ids = _record_all(loop, varied)
            before = [loop.get(i) for i in ids]
            loop.close()
            with opener(loop) as again:
                after = [again.get(i) for i in ids]
                assert_same(after, before, path="after close and reopen, get()")
                scanned = [s.id for s in again.scan()]
                require(scanned == ids, f"after reopening, scan() gives {scanned}, expected {ids}")

        checks.append(reopened_store_holds_what_was_recorded)
    return [Check("FeedbackLoop", c.__name__, subject, c) for c in checks]


def check_feedback_loop(
    make_loop: Callable[[], FeedbackLoop], examples: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`feedback_loop_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(feedback_loop_checks(make_loop, examples, **options))
