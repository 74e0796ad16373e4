"""The SQLite store's schema and its forward migrations (``PRAGMA user_version``).

A new layout is a new numbered step in :data:`MIGRATIONS`: opening a file of an
older version runs the missing steps in one transaction; a file of a newer
version is refused.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]


def _create_v1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE feedback (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- recording order, the keyset cursor
            id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            created_us INTEGER NOT NULL,            -- feedback.created_at, µs since the epoch
            recorded_us INTEGER NOT NULL,
            model_name TEXT,
            model_version TEXT,
            user_key TEXT,                          -- pseudonym (or raw id when opted out)
            body TEXT NOT NULL                      -- the feedback as JSON, user as stored
        )"""
    )
    db.execute("CREATE INDEX feedback_kind ON feedback (kind, seq)")
    db.execute("CREATE INDEX feedback_created ON feedback (created_us)")
    db.execute("CREATE INDEX feedback_model ON feedback (model_name, model_version)")
    db.execute("CREATE INDEX feedback_user ON feedback (user_key)")
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _add_response_id_v2(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE feedback ADD COLUMN response_id TEXT")
    rows = db.execute("SELECT seq, body FROM feedback").fetchall()
    db.executemany(
        "UPDATE feedback SET response_id = ? WHERE seq = ?",
        [(json.loads(body).get("response_id"), seq) for seq, body in rows],
    )
    db.execute("CREATE INDEX feedback_response ON feedback (response_id)")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _create_v1,
    2: _add_response_id_v2,
}
"""Schema version -> the step that brings a file from the version before to it."""
SCHEMA_VERSION = max(MIGRATIONS)
"""The schema version this code writes (``PRAGMA user_version``)."""
