"""ReviewQueue: states, the append-only audit trail, preferences, pagination, races, bad input."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from genarch.errors import GenarchError, IntegrityError, InvalidInputError, NotFoundError
from genarch.feedback import (
    REVIEW_SCHEMA_VERSION,
    ReviewQueue,
    SQLiteFeedbackStore,
    preference_pairs,
)
from genarch.schemas import OutputRef, Preference, Rating


@pytest.fixture
def queue(tmp_path: Path) -> Any:
    with ReviewQueue(tmp_path / "review.db") as opened:
        yield opened


def _submit(queue: ReviewQueue, n: int = 1, **fields: Any) -> list[str]:
    return [queue.submit(f"question {i}?", f"answer {i}", **fields) for i in range(n)]


# ---------------------------------------------------------------- states


def test_a_submitted_item_is_pending_with_what_was_submitted(queue: ReviewQueue) -> None:
    chart = OutputRef(uri="s3://charts/7.png", media_type="image/png")
    item_id = queue.submit(
        "Chart sales",
        chart,
        model_name="bot",
        model_version="3",
        response_id="req-7",
        flags=["toxicity", "ungrounded"],
    )
    item = queue.get(item_id)
    assert (item.state, item.response, item.flags) == ("pending", chart, ("toxicity", "ungrounded"))
    assert (item.model_name, item.model_version, item.response_id) == ("bot", "3", "req-7")
    assert (item.reviewer, item.reason, item.correction, item.decided_at) == (None,) * 4


@pytest.mark.parametrize("decision", ["approve", "reject", "correct"])
def test_each_decision_moves_pending_to_its_state_with_reviewer_and_reason(
    queue: ReviewQueue, decision: str
) -> None:
    [item_id] = _submit(queue)
    if decision == "correct":
        item = queue.correct(item_id, "better", reviewer="ana", reason="too vague")
    else:
        item = getattr(queue, decision)(item_id, reviewer="ana", reason="checked")
    expected = {"approve": "approved", "reject": "rejected", "correct": "corrected"}[decision]
    assert queue.get(item_id) == item
    assert (item.state, item.reviewer) == (expected, "ana")
    assert item.reason in ("checked", "too vague")
    assert item.decided_at is not None
    assert item.decided_at >= item.submitted_at
    assert item.correction == ("better" if decision == "correct" else None)


@pytest.mark.parametrize("first", ["approved", "rejected", "corrected"])
def test_deciding_an_item_that_is_not_pending_names_its_state(
    queue: ReviewQueue, first: str
) -> None:
    [item_id] = _submit(queue)
    {
        "approved": lambda: queue.approve(item_id, reviewer="ana"),
        "rejected": lambda: queue.reject(item_id, reviewer="ana", reason="wrong"),
        "corrected": lambda: queue.correct(item_id, "fixed", reviewer="ana", reason="typo"),
    }[first]()
    with pytest.raises(InvalidInputError, match=rf"is {first} \(by ana at .*\), not pending"):
        queue.reject(item_id, reviewer="bob", reason="late")
    assert queue.get(item_id).reviewer == "ana"
    assert [e.action for e in queue.audit_trail(item_id)] == ["submitted", first]


def test_an_unknown_item_is_not_found(queue: ReviewQueue) -> None:
    with pytest.raises(NotFoundError, match="no review item 'nope'"):
        queue.approve("nope", reviewer="ana")
    with pytest.raises(NotFoundError):
        queue.get("nope")


def test_counts_cover_every_state(queue: ReviewQueue) -> None:
    a, b, _ = _submit(queue, 3)
    queue.approve(a, reviewer="ana")
    queue.reject(b, reviewer="ana", reason="off-topic")
    assert queue.counts() == {"pending": 1, "approved": 1, "rejected": 1, "corrected": 0}


# ---------------------------------------------------------------- the audit trail


def test_the_audit_trail_records_every_change_in_order(queue: ReviewQueue) -> None:
    a, b = _submit(queue, 2)
    queue.correct(b, "fixed", reviewer="bob", reason="typo")
    queue.approve(a, reviewer="ana", reason="fine")
    events = list(queue.audit_trail())
    assert [(e.item_id, e.action, e.state, e.reviewer) for e in events] == [
        (a, "submitted", "pending", None),
        (b, "submitted", "pending", None),
        (b, "corrected", "corrected", "bob"),
        (a, "approved", "approved", "ana"),
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert events[2].correction == "fixed"
    assert events[3].reason == "fine"
    assert [e.action for e in queue.audit_trail(a)] == ["submitted", "approved"]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("UPDATE review_audit SET reason = 'rewritten'", "append-only"),
        ("DELETE FROM review_audit", "append-only"),
        ("DELETE FROM review_items", "never deleted"),
        ("UPDATE review_items SET state = 'approved'", "decided, once"),
        ("UPDATE review_items SET prompt = 'changed' WHERE state = 'pending'", "decided, once"),
    ],
)
def test_the_file_itself_refuses_to_rewrite_history(tmp_path: Path, sql: str, message: str) -> None:
    path = tmp_path / "review.db"
    with ReviewQueue(path) as queue:
        a, _ = _submit(queue, 2)
        queue.approve(a, reviewer="ana")
        before = list(queue.audit_trail())
    # another program, going around the API, with a plain connection
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.DatabaseError, match=message):
        db.execute(sql)
    with ReviewQueue(path) as queue:
        assert list(queue.audit_trail()) == before


def test_a_failed_decision_appends_nothing(queue: ReviewQueue) -> None:
    [item_id] = _submit(queue)
    with pytest.raises(InvalidInputError, match="same as the item's response"):
        queue.correct(item_id, "answer 0", reviewer="ana", reason="no change")
    assert [e.action for e in queue.audit_trail()] == ["submitted"]
    assert queue.get(item_id).state == "pending"


# ---------------------------------------------------------------- preferences


def test_corrections_become_preferences_corrected_over_original(tmp_path: Path) -> None:
    with ReviewQueue(tmp_path / "review.db") as queue:
        a, b, c = (
            queue.submit(p, r, model_name="bot", model_version="3", response_id=f"req-{p}")
            for p, r in [("2+2?", "5"), ("capital of France?", "Paris"), ("hi", "go away")]
        )
        queue.correct(c, "Hello!", reviewer="bob", reason="rude")
        queue.approve(b, reviewer="ana")
        queue.correct(a, "4", reviewer="ana", reason="arithmetic")
        queue.reject(queue.submit("x?", "y"), reviewer="ana", reason="spam")
        pairs = list(queue.preferences())
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        ("hi", "Hello!", "go away"),
        ("2+2?", "4", "5"),
    ]
    assert all(isinstance(p, Preference) for p in pairs)
    assert pairs[1].model_dump(include={"model_name", "model_version", "response_id"}) == {
        "model_name": "bot",
        "model_version": "3",
        "response_id": "req-2+2?",
    }
    assert pairs[1].metadata == {"review_item": a, "reviewer": "ana"}
    # returned, not stored: recording them is the caller's one line
    with SQLiteFeedbackStore(tmp_path / "fb.db", key=b"k" * 32) as store:
        ids = [store.record(p) for p in pairs]
        assert [s.feedback for s in map(store.get, ids)] == pairs
        assert list(preference_pairs(store.scan())) == pairs


# ---------------------------------------------------------------- pagination


def test_pending_pages_visit_every_pending_item_once_while_others_are_decided(
    queue: ReviewQueue,
) -> None:
    ids = _submit(queue, 25)
    seen: list[str] = []
    approved: set[str] = set()
    page = queue.pending(limit=4)
    while True:
        seen += [item.id for item in page.items]
        if page.next_cursor is None:
            break
        # a reviewer decides an item on the next page meanwhile: it drops out, nothing is skipped
        later = [i for i in ids if i not in seen and i not in approved]
        if len(later) > 1:
            queue.approve(later[1], reviewer="ana")
            approved.add(later[1])
        page = queue.pending(limit=4, cursor=page.next_cursor)
    assert approved == {item.id for item in queue.items("approved", limit=100).items}
    assert len(approved) >= 4
    assert seen == [i for i in ids if i not in approved]
    assert len(set(seen)) == len(seen)


def test_pending_can_select_one_flag(queue: ReviewQueue) -> None:
    toxic = queue.submit("a", "b", flags=["toxicity"])
    queue.submit("c", "d", flags=["ungrounded"])
    queue.submit("e", "f")
    assert [i.id for i in queue.pending(flag="toxicity").items] == [toxic]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q: q.pending(limit=0), "limit"),
        (lambda q: q.pending(limit=1001), "limit"),
        (lambda q: q.pending(limit=True), "limit"),
        (lambda q: q.pending(cursor="page-2"), "cursor"),
        (lambda q: q.items("maybe"), "state"),
        (lambda q: q.pending(flag=3), "flag"),
    ],
)
def test_bad_page_arguments_are_refused(queue: ReviewQueue, call: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(queue)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("submit", "field"),
    [
        (lambda q: q.submit("", "r"), "ReviewItem.prompt"),
        (lambda q: q.submit("p", 42), "ReviewItem.response"),
        (lambda q: q.submit("p", "r", flags="toxicity"), "ReviewItem.flags"),
        (lambda q: q.submit("p", "r", flags=["ok", ""]), "ReviewItem.flags.1"),
        (lambda q: q.submit("p", "r", flags=[1]), "ReviewItem.flags.0"),
        (lambda q: q.submit("p", "x" * 2_000_000), r"ReviewItem.response: 2000000 bytes"),
        (lambda q: q.submit("p", "r", model_version=3), "ReviewItem.model_version"),
    ],
)
def test_a_bad_submission_names_the_field_and_stores_nothing(
    queue: ReviewQueue, submit: Any, field: str
) -> None:
    with pytest.raises(InvalidInputError, match=field):
        submit(queue)
    assert queue.counts()["pending"] == 0
    assert list(queue.audit_trail()) == []


@pytest.mark.parametrize(
    ("decide", "field"),
    [
        (lambda q, i: q.approve(i, reviewer=""), "reviewer"),
        (lambda q, i: q.approve(i, reviewer="   "), "reviewer"),
        (lambda q, i: q.reject(i, reviewer="ana", reason=""), "reason"),
        (lambda q, i: q.correct(i, "x", reviewer="ana", reason=None), "reason"),
        (lambda q, i: q.correct(i, 7, reviewer="ana", reason="r"), "correction"),
        (lambda q, i: q.approve(i, reviewer="ana", reason="r" * 2_000_000), "reason: 2000000"),
        (lambda q, i: q.approve(None, reviewer="ana"), "item_id"),
    ],
)
def test_a_bad_decision_names_the_field_and_changes_nothing(
    queue: ReviewQueue, decide: Any, field: str
) -> None:
    [item_id] = _submit(queue)
    with pytest.raises(InvalidInputError, match=field):
        decide(queue, item_id)
    assert queue.get(item_id).state == "pending"


def test_the_size_limit_is_configurable(tmp_path: Path) -> None:
    too_long = r"ReviewItem.prompt: 6 bytes.*max_text_bytes"
    with (
        ReviewQueue(tmp_path / "r.db", max_text_bytes=5) as queue,
        pytest.raises(InvalidInputError, match=too_long),
    ):
        queue.submit("x" * 6, "ok")


# ---------------------------------------------------------------- the file


def test_every_connection_is_wal_with_full_sync(queue: ReviewQueue) -> None:
    _submit(queue)
    db = queue._db.connection()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA user_version").fetchone()[0] == REVIEW_SCHEMA_VERSION


def test_reopening_gives_back_items_and_trail(tmp_path: Path) -> None:
    path = tmp_path / "review.db"
    with ReviewQueue(path) as queue:
        a, b = _submit(queue, 2)
        queue.correct(a, "fixed", reviewer="ana", reason="typo")
        items, trail = [queue.get(a), queue.get(b)], list(queue.audit_trail())
    with pytest.raises(GenarchError, match="closed"):
        queue.get(a)
    with ReviewQueue(path) as again:
        assert [again.get(a), again.get(b)] == items
        assert list(again.audit_trail()) == trail


def test_a_feedback_store_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "feedback.db"
    with SQLiteFeedbackStore(path, key=b"k" * 32) as store:
        store.record(Rating(prompt="p", output="o", score=1.0))
    with ReviewQueue(path) as queue, pytest.raises(IntegrityError, match="not a review queue"):
        queue.pending()


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "review.db"
    with ReviewQueue(path) as queue:
        queue.pending()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {REVIEW_SCHEMA_VERSION + 1}")
    with ReviewQueue(path) as queue, pytest.raises(IntegrityError, match="newer"):
        queue.pending()


# ---------------------------------------------------------------- two reviewers at once


def _race(path: str, reviewer: str, item_ids: list[str], barrier: Any, results: Any) -> None:
    """One reviewer process: at each item, wait for the other one, then decide at once."""
    with ReviewQueue(path) as queue:
        for item_id in item_ids:
            barrier.wait(10)
            try:
                if reviewer == "ana":
                    queue.approve(item_id, reviewer=reviewer)
                else:
                    queue.reject(item_id, reviewer=reviewer, reason="racing")
                results.put((item_id, reviewer, "won"))
            except InvalidInputError as error:
                results.put((item_id, reviewer, str(error)))


def test_two_reviewers_deciding_the_same_items_at_once_exactly_one_wins(tmp_path: Path) -> None:
    start = time.monotonic()
    path = tmp_path / "review.db"
    with ReviewQueue(path) as queue:
        item_ids = _submit(queue, 20)
    # fork: children start at once (spawned ones spend seconds importing)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    reviewers = [
        context.Process(target=_race, args=(str(path), name, item_ids, barrier, results))
        for name in ("ana", "bob")
    ]
    for process in reviewers:
        process.start()
    outcomes = [results.get(timeout=10) for _ in range(2 * len(item_ids))]
    for process in reviewers:
        process.join(10)
        assert process.exitcode == 0
    with ReviewQueue(path) as queue:
        for item_id in item_ids:
            mine = [o for o in outcomes if o[0] == item_id]
            winners = [who for _, who, what in mine if what == "won"]
            [loser_message] = [what for _, _, what in mine if what != "won"]
            assert len(winners) == 1
            item = queue.get(item_id)
            assert item.reviewer == winners[0]
            assert f"is {item.state} (by {item.reviewer} at" in loser_message
            assert "not pending" in loser_message
            assert [e.action for e in queue.audit_trail(item_id)] == ["submitted", item.state]
    assert time.monotonic() - start < 5
