"""The review queue's SQLite layout: tables, guard triggers, migrations, rows <-> records.

The queue's file has its own ``PRAGMA user_version``; a new layout is a new
numbered step in :data:`REVIEW_MIGRATIONS`. The triggers make the rules hold
for anyone who opens the file, not only for :class:`~genarch.feedback.ReviewQueue`:
the audit trail refuses ``UPDATE`` and ``DELETE``, an item is never deleted,
and only a pending item may change — once, to a decided state, leaving what
was submitted untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from genarch.feedback.review_records import ReviewEvent, ReviewItem
from genarch.schemas import Output

__all__ = [
    "ITEM_COLUMNS",
    "REVIEW_MIGRATIONS",
    "REVIEW_SCHEMA_VERSION",
    "event_from_row",
    "insert_item",
    "item_from_row",
    "select_events",
    "update_decided",
]

_ITEMS = """CREATE TABLE review_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order, the keyset cursor
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'corrected')),
    prompt TEXT NOT NULL,
    response TEXT NOT NULL,                 -- Output as JSON
    model_name TEXT,
    model_version TEXT,
    response_id TEXT,
    flags TEXT NOT NULL,                    -- JSON list of strings
    correction TEXT,                        -- Output as JSON, on corrected items
    reviewer TEXT,
    reason TEXT,
    submitted_us INTEGER NOT NULL,          -- µs since the epoch
    decided_us INTEGER
)"""

_AUDIT = """CREATE TABLE review_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order events happened in
    item_id TEXT NOT NULL REFERENCES review_items (id),
    action TEXT NOT NULL,                   -- submitted, approved, rejected, corrected
    state TEXT NOT NULL,                    -- the item's state after the event
    reviewer TEXT,
    reason TEXT,
    correction TEXT,
    at_us INTEGER NOT NULL
)"""

# a decided item, or any change to what was submitted, is refused
_DECIDED_ONCE = """WHEN OLD.state <> 'pending' OR NEW.state = 'pending'
    OR NEW.id IS NOT OLD.id OR NEW.seq IS NOT OLD.seq
    OR NEW.prompt IS NOT OLD.prompt OR NEW.response IS NOT OLD.response
    OR NEW.model_name IS NOT OLD.model_name OR NEW.model_version IS NOT OLD.model_version
    OR NEW.response_id IS NOT OLD.response_id OR NEW.flags IS NOT OLD.flags
    OR NEW.submitted_us IS NOT OLD.submitted_us"""

#: trigger name -> (event, table, condition, message)
_GUARDS = {
    "review_audit_no_update": ("UPDATE", "review_audit", "", "review_audit is append-only"),
    "review_audit_no_delete": ("DELETE", "review_audit", "", "review_audit is append-only"),
    "review_items_no_delete": ("DELETE", "review_items", "", "review items are never deleted"),
    "review_items_decided_once": (
        "UPDATE",
        "review_items",
        _DECIDED_ONCE,
        "only a pending review item can be decided, once",
    ),
}


def _create_v1(db: sqlite3.Connection) -> None:
    db.execute(_ITEMS)
    db.execute("CREATE INDEX review_items_state ON review_items (state, seq)")
    db.execute(_AUDIT)
    db.execute("CREATE INDEX review_audit_item ON review_audit (item_id, seq)")
    db.execute("CREATE INDEX review_audit_action ON review_audit (action, seq)")
    for name, (event, table, condition, message) in _GUARDS.items():
        db.execute(
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} {condition} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


REVIEW_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _create_v1}
"""Review schema version -> the step that brings a file from the version before to it."""
REVIEW_SCHEMA_VERSION = max(REVIEW_MIGRATIONS)
"""The review queue's schema version (``PRAGMA user_version`` of its file)."""


# ------------------------------------------------------------------ rows <-> records

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_OUTPUT: TypeAdapter[Output] = TypeAdapter(Output)

ITEM_COLUMNS = (
    "seq, id, state, prompt, response, model_name, model_version, response_id, flags, "
    "correction, reviewer, reason, submitted_us, decided_us"
)
"""The columns :func:`item_from_row` reads, in its order."""
_EVENT_COLUMNS = "seq, item_id, action, state, reviewer, reason, correction, at_us"


def _micros(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> dt.datetime:
    return _EPOCH + micros * _MICROSECOND


def _output_json(output: Output | None) -> bytes | None:
    return None if output is None else _OUTPUT.dump_json(output)


def _output(text: str | bytes | None) -> Output | None:
    return None if text is None else _OUTPUT.validate_json(text)


def item_from_row(row: tuple[Any, ...]) -> ReviewItem:
    """The item a ``SELECT ITEM_COLUMNS`` row holds (a ``ValueError`` when it is corrupt)."""
    (_, item_id, state, prompt, response, name, version, response_id, flags, correction,
     reviewer, reason, submitted_us, decided_us) = row  # fmt: skip
    return ReviewItem(
        id=item_id,
        state=state,
        prompt=prompt,
        response=_OUTPUT.validate_json(response),
        model_name=name,
        model_version=version,
        response_id=response_id,
        flags=json.loads(flags),
        correction=_output(correction),
        reviewer=reviewer,
        reason=reason,
        submitted_at=_moment(submitted_us),
        decided_at=None if decided_us is None else _moment(decided_us),
    )


def event_from_row(row: tuple[Any, ...]) -> ReviewEvent:
    """The audit event a ``SELECT`` of the audit columns holds."""
    seq, item_id, action, state, reviewer, reason, correction, at_us = row
    return ReviewEvent(
        seq=seq,
        item_id=item_id,
        action=action,
        state=state,
        reviewer=reviewer,
        reason=reason,
        correction=_output(correction),
        at=_moment(at_us),
    )


def select_events(where: str) -> str:
    """The audit-trail query: events after a ``seq``, filtered by ``where``, in order."""
    return f"SELECT {_EVENT_COLUMNS} FROM review_audit WHERE seq > ?{where} ORDER BY seq LIMIT ?"


def _append_event(db: sqlite3.Connection, item: ReviewItem, action: str, at: dt.datetime) -> None:
    db.execute(
        "INSERT INTO review_audit (item_id, action, state, reviewer, reason, correction, at_us) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (item.id, action, item.state, item.reviewer, item.reason, _output_json(item.correction),
         _micros(at)),
    )  # fmt: skip


def insert_item(db: sqlite3.Connection, item: ReviewItem) -> None:
    """Insert a new pending item and its ``submitted`` event (inside the caller's transaction)."""
    db.execute(
        "INSERT INTO review_items (id, state, prompt, response, model_name, model_version, "
        "response_id, flags, submitted_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            item.id,
            item.state,
            item.prompt,
            _OUTPUT.dump_json(item.response),
            item.model_name,
            item.model_version,
            item.response_id,
            json.dumps(list(item.flags), ensure_ascii=False),
            _micros(item.submitted_at),
        ),
    )
    _append_event(db, item, "submitted", item.submitted_at)


def update_decided(db: sqlite3.Connection, item: ReviewItem) -> bool:
    """Write a decided item over its pending row and append the decision to the audit trail.

    Returns ``False`` (and writes nothing) when the row is no longer pending.
    """
    if item.decided_at is None:
        raise ValueError(f"review item {item.id!r} has no decision time")
    changed = db.execute(
        "UPDATE review_items SET state = ?, correction = ?, reviewer = ?, reason = ?, "
        "decided_us = ? WHERE id = ? AND state = 'pending'",
        (item.state, _output_json(item.correction), item.reviewer, item.reason,
         _micros(item.decided_at), item.id),
    ).rowcount  # fmt: skip
    if changed != 1:
        return False
    _append_event(db, item, item.state, item.decided_at)
    return True
