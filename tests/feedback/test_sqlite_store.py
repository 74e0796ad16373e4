"""SQLiteFeedbackStore: the kit, concurrency, crashes, bad input, erasure, migration, pseudonyms."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sqlite3
import time
from itertools import count
from pathlib import Path

import pytest
from hypothesis import given, settings

from feedback import feedback_workers
from genarch.errors import IntegrityError, InvalidInputError
from genarch.feedback import MIGRATIONS, SCHEMA_VERSION, SQLiteFeedbackStore, preference_pairs
from genarch.protocols import FeedbackLoop
from genarch.schemas import Correction, FeedbackFilter, OutputRef, Preference, Rating
from genarch.testing import check_feedback_loop, strategies

EXAMPLES = [
    Rating(prompt="2+2?", output="4", score=1.0, comment="right"),
    Rating(
        prompt="draw a cat",
        output=OutputRef(uri="s3://b/cat.png", media_type="image/png"),
        score=0.2,
    ),
    Correction(prompt="capital of France?", output="Lyon", corrected="Paris"),
    Preference(prompt="greet", chosen="Hello!", rejected="go away", metadata={"lang": "en"}),
]


def store(path: Path, **options: object) -> SQLiteFeedbackStore:
    return SQLiteFeedbackStore(path, **options)


def rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT id, user_key, body FROM feedback").fetchall()


# ---------------------------------------------------------------- the kit


@pytest.mark.parametrize("pseudonymise", [True, False])
def test_the_store_passes_the_kit(tmp_path: Path, pseudonymise: bool) -> None:
    numbers = count()

    def fresh() -> FeedbackLoop:
        return store(tmp_path / f"kit-{next(numbers)}.db", pseudonymise_users=pseudonymise)

    def reopen(closed: FeedbackLoop) -> FeedbackLoop:
        assert isinstance(closed, SQLiteFeedbackStore)
        return SQLiteFeedbackStore(closed.path, closed.config)

    check_feedback_loop(fresh, EXAMPLES, reopen=reopen)


def test_record_commits_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with store(tmp_path / "fb.db") as feedback:
        feedback.record(EXAMPLES[0])
        db = feedback._connection()
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    # a second connection sees the row without the first one's help
    assert len(rows(tmp_path / "fb.db")) == 1


# ---------------------------------------------------------------- concurrency and crashes


def test_four_processes_writing_at_once_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with store(path, key=feedback_workers.KEY) as feedback:
        feedback.query()  # create the file before the writers race
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=feedback_workers.write_many, args=(str(path), w, 500))
        for w in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM feedback").fetchone() == (
            2000,
            2000,
        )
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_every_id_record_returned_survives_sigkill(tmp_path: Path) -> None:
    path, side = tmp_path / "crash.db", tmp_path / "ids.txt"
    with store(path, key=feedback_workers.KEY) as feedback:
        feedback.query()
    # fork: the child starts at once (a spawned one spends seconds importing)
    context = multiprocessing.get_context("fork")
    rng = random.Random(15)
    for _ in range(25):
        child = context.Process(
            target=feedback_workers.record_until_killed, args=(str(path), str(side))
        )
        child.start()
        time.sleep(rng.uniform(0.02, 0.2))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    # A kill can tear the side file's last write (seen once in CI: 13 hex digits of an
    # id); a torn id was never fully reported, so only whole ids are checked.
    written = side.read_text().split()
    returned = [token for token in written if len(token) == 32]
    assert len(written) - len(returned) <= 25  # at most one torn write per kill
    assert len(returned) > 25
    with store(path, key=feedback_workers.KEY) as feedback:
        stored = {s.id for s in feedback.scan()}
    assert set(returned) <= stored
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Rating.parse({"kind": "shrug", "prompt": "p", "output": "o", "score": 1}), "kind"),
        (lambda: Rating(prompt="", output="o", score=1.0), "prompt"),
        (lambda: Preference(prompt="p", chosen="same", rejected="same"), "rejected"),
        (lambda: Correction(prompt="p", output="same", corrected="same"), "corrected"),
        (lambda: Rating(prompt="p", output="o", score=1.5), "score"),
        (lambda: OutputRef(uri="x", media_type="png"), "media_type"),
    ],
)
def test_malformed_feedback_is_rejected_naming_the_field(make, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match=field):
        make()


def test_text_over_the_size_limit_is_rejected_and_nothing_is_written(tmp_path: Path) -> None:
    with store(tmp_path / "fb.db") as feedback:
        with pytest.raises(InvalidInputError, match=r"rating\.output: 10000000 bytes"):
            feedback.record(Rating(prompt="p", output="x" * 10_000_000, score=1.0))
        with pytest.raises(InvalidInputError, match=r"metadata\.note"):
            feedback.record(
                Rating(prompt="p", output="o", score=1.0, metadata={"note": "y" * 2_000_000})
            )
        assert list(feedback.scan()) == []


def test_the_size_limit_is_configurable(tmp_path: Path) -> None:
    feedback = store(tmp_path / "fb.db", max_text_bytes=10)
    with feedback, pytest.raises(InvalidInputError, match=r"prompt: 11 bytes"):
        feedback.record(Rating(prompt="x" * 11, output="o", score=1.0))


def _exported(tmp_path: Path) -> Path:
    path = tmp_path / "export.jsonl"
    with store(tmp_path / "source.db") as feedback:
        for example in EXAMPLES:
            feedback.record(example)
        assert feedback.export_jsonl(path) == len(EXAMPLES)
    return path


def test_export_then_import_round_trips(tmp_path: Path) -> None:
    path = _exported(tmp_path)
    with (
        store(tmp_path / "source.db") as source,
        store(tmp_path / "copy.db", key=b"k" * 32) as copy,
    ):
        assert copy.import_jsonl(path) == len(EXAMPLES)
        assert list(copy.scan()) == list(source.scan())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda lines: [
                *lines[:2],
                b'{"id": "x", "feedback": {"kind": "rating", "prompt": "\xff"}}',
            ],
            r"line 3: invalid UTF-8",
        ),
        (
            lambda lines: [*lines[:1], lines[1].replace(b'"score":0.2', b'"score":7')],
            r"line 2: .*score",
        ),
        (lambda lines: [*lines, lines[0]], r"line 5: id: .* already"),
        (lambda lines: [*lines, b"not json"], r"line 5: "),
    ],
)
def test_a_bad_import_line_is_named_and_nothing_is_imported(
    tmp_path: Path, damage, message
) -> None:  # type: ignore[no-untyped-def]
    path = _exported(tmp_path)
    path.write_bytes(b"\n".join(damage(path.read_bytes().splitlines())))
    with store(tmp_path / "target.db") as target:
        with pytest.raises(InvalidInputError, match=message):
            target.import_jsonl(path)
        assert list(target.scan()) == []


# ---------------------------------------------------------------- erasure and pseudonyms


def test_forget_user_leaves_no_row_and_no_export_line(tmp_path: Path) -> None:
    with store(tmp_path / "fb.db") as feedback:
        for i, example in enumerate(EXAMPLES * 3):
            feedback.record(example.model_copy(update={"user": f"user-{i % 2}"}))
        gone_key = feedback._user_key("user-0")
        assert feedback.forget_user("user-0") == 6
        feedback.export_jsonl(tmp_path / "all.jsonl")
        feedback.export_preferences_jsonl(tmp_path / "pairs.jsonl")
    assert all(user_key != gone_key for _, user_key, _ in rows(tmp_path / "fb.db"))
    exported = (tmp_path / "all.jsonl").read_text()
    assert len(exported.splitlines()) == 6
    assert gone_key not in exported
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 3  # user-1's correction and preferences only
    # secure_delete: the forgotten user's pseudonym is nowhere in the file
    assert gone_key.encode() not in (tmp_path / "fb.db").read_bytes()


def test_pseudonyms_are_stable_for_one_key_and_differ_across_keys(tmp_path: Path) -> None:
    a1 = store(tmp_path / "a.db", key=b"a" * 32)._user_key("alice")
    a2 = store(tmp_path / "b.db", key=b"a" * 32)._user_key("alice")
    b = store(tmp_path / "c.db", key=b"b" * 32)._user_key("alice")
    assert a1 == a2 != b
    assert a1 is not None
    assert a1.startswith("hmac-sha256:")
    assert "alice" not in a1


def test_the_generated_key_is_private_and_reused(tmp_path: Path) -> None:
    with store(tmp_path / "fb.db") as feedback:
        first = feedback.get(feedback.record(EXAMPLES[0].model_copy(update={"user": "bob"})))
    key_file = tmp_path / "fb.db.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    with store(tmp_path / "fb.db") as again:
        assert [s.id for s in again.scan(FeedbackFilter(user="bob"))] == [first.id]


def test_a_different_key_is_refused(tmp_path: Path) -> None:
    with store(tmp_path / "fb.db", key=b"a" * 32) as feedback:
        feedback.record(EXAMPLES[0])
    with (
        pytest.raises(IntegrityError, match="key"),
        store(tmp_path / "fb.db", key=b"b" * 32) as other,
    ):
        other.query()


def test_opting_out_stores_user_ids_as_given(tmp_path: Path) -> None:
    with store(tmp_path / "fb.db", pseudonymise_users=False) as feedback:
        stored = feedback.get(feedback.record(EXAMPLES[0].model_copy(update={"user": "carol"})))
    assert stored.feedback.user == "carol"
    assert not (tmp_path / "fb.db.key").exists()


# ---------------------------------------------------------------- schema versions


def test_a_file_of_the_previous_schema_version_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    body = EXAMPLES[0].model_copy(update={"response_id": "r-7"}).model_dump_json()
    with sqlite3.connect(path) as db:  # an old file, built by hand with version N-1's layout
        for step in range(1, SCHEMA_VERSION):
            MIGRATIONS[step](db)
        db.execute(
            "INSERT INTO feedback (id, kind, created_us, recorded_us, model_name, model_version,"
            " user_key, body) VALUES ('old-1', 'rating', 0, 0, NULL, NULL, NULL, ?)",
            (body,),
        )
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    with store(path) as feedback:
        assert [s.id for s in feedback.scan(FeedbackFilter(response_id="r-7"))] == ["old-1"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(IntegrityError, match="newer"), store(path) as feedback:
        feedback.query()


# ---------------------------------------------------------------- preference pairs


def test_preference_pairs_turn_corrections_into_corrected_over_original() -> None:
    pairs = list(preference_pairs(EXAMPLES))
    assert [(p.chosen, p.rejected) for p in pairs] == [("Paris", "Lyon"), ("Hello!", "go away")]


def test_preference_export_has_the_trainer_layout(tmp_path: Path) -> None:
    with store(tmp_path / "fb.db") as feedback:
        for example in EXAMPLES:
            feedback.record(example)
        assert feedback.export_preferences_jsonl(tmp_path / "pairs.jsonl") == 2
    lines = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert lines[0] == {"prompt": "capital of France?", "chosen": "Paris", "rejected": "Lyon"}


@settings(max_examples=30)
@given(item=strategies.feedback())
def test_any_valid_feedback_round_trips(tmp_path_factory: pytest.TempPathFactory, item) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("prop") / "fb.db"
    with store(path, pseudonymise_users=False) as feedback:
        assert feedback.get(feedback.record(item)).feedback == item
