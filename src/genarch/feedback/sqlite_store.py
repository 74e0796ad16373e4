"""A :class:`~genarch.protocols.FeedbackLoop` in one SQLite file.

Durability and concurrency: every connection runs in WAL mode with
``synchronous=FULL`` (a commit is on disk before ``record`` returns) and a
``busy_timeout``; a write that still meets ``SQLITE_BUSY`` is retried with
jittered backoff for up to ``busy_retry_seconds``, so several processes can
write one file at once (``genarch.feedback._sqlite``, shared with the review
queue). ``secure_delete`` is on, so erased rows are overwritten rather than
left in free pages. JSONL export and import live in ``genarch.feedback._jsonl``.

Privacy: user ids are stored as ``hmac-sha256:<hex>`` pseudonyms keyed by a
secret (yours, or one the store generates into ``<file>.key``, mode 0600).
Threat model: the pseudonym stops someone who reads the database (or an
export) from learning user ids, or from linking them to another system's ids
without the key; it does not protect against someone who holds the key and can
guess ids. Keep the key file apart from exports. Losing the key breaks
``forget_user`` and user queries for existing rows (the store refuses to open
with a key that differs from the one it was created with).

The schema is versioned with ``PRAGMA user_version``; opening an older file
runs the forward migrations in :data:`MIGRATIONS`, in one transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field

from genarch.configured import Configured
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.feedback import _jsonl
from genarch.feedback._files import load_or_create_key
from genarch.feedback._limits import check_text_sizes
from genarch.feedback._sqlite import DurableConnection
from genarch.feedback.schema import MIGRATIONS, SCHEMA_VERSION
from genarch.schemas import (
    MAX_PAGE_SIZE,
    Config,
    Correction,
    FeedbackFilter,
    FeedbackPage,
    Preference,
    Rating,
    StoredFeedback,
)

__all__ = [
    "PSEUDONYM_PREFIX",
    "SQLiteFeedbackStore",
    "SQLiteFeedbackStoreConfig",
]

AnyFeedback = Rating | Correction | Preference

PSEUDONYM_PREFIX = "hmac-sha256:"
"""Prefix of a pseudonymised user id: ``hmac-sha256:`` and 64 hex digits."""
_PSEUDONYM = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")
_KEY_CHECK = b"genarch.feedback key check"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_SCAN_PAGE = 500


# ----------------------------------------------------------------- the config


class SQLiteFeedbackStoreConfig(Config):
    """How a :class:`SQLiteFeedbackStore` stores and limits feedback."""

    pseudonymise_users: bool = True
    """Store user ids as keyed HMAC-SHA256 pseudonyms (``False`` stores them as given)."""
    max_text_bytes: Annotated[int, Field(ge=1)] = 1_000_000
    """Largest UTF-8 size of any one text field (prompt, output, metadata value, ...)."""
    busy_timeout_ms: Annotated[int, Field(ge=0)] = 5_000
    """SQLite's own wait for a lock, on every connection."""
    busy_retry_seconds: Annotated[float, Field(gt=0)] = 60.0
    """How long a write keeps retrying after ``SQLITE_BUSY`` before giving up."""


def _micros(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> dt.datetime:
    return _EPOCH + micros * _MICROSECOND


class SQLiteFeedbackStore(Configured[SQLiteFeedbackStoreConfig]):
    """Feedback in one SQLite file, safe for several processes (see the module docs).

    The file is opened (created, migrated) on first use, not by the constructor.

    Args:
        path: the database file.
        config: a :class:`SQLiteFeedbackStoreConfig` (or its fields as keywords).
        key: the secret for user pseudonyms (at least 16 bytes); without it the
            store uses, or creates, the key file ``<path>.key``.

    Raises:
        ConfigError: bad config values or a key shorter than 16 bytes.

    Example:
        >>> import tempfile
        >>> from genarch.schemas import Rating
        >>> with SQLiteFeedbackStore(tempfile.mkdtemp() + "/fb.db") as store:
        ...     feedback_id = store.record(Rating(prompt="2+2?", output="4", score=1.0))
        ...     store.get(feedback_id).feedback.score
        1.0
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: SQLiteFeedbackStoreConfig | None = None,
        *,
        key: bytes | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            raise ConfigError("SQLiteFeedbackStore key must be bytes, at least 16 of them")
        self.path = Path(path)
        self._key = key
        self._db = DurableConnection(
            self.path,
            "feedback store",
            self._migrate,
            busy_timeout_ms=self.config.busy_timeout_ms,
            busy_retry_seconds=self.config.busy_retry_seconds,
        )

    @property
    def key_path(self) -> Path:
        """Where the generated pseudonym key lives when no ``key`` is given."""
        return self.path.with_name(self.path.name + ".key")

    # ---------------------------------------------------------- connection

    def _connection(self) -> sqlite3.Connection:
        return self._db.connection()

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring the file to :data:`SCHEMA_VERSION` (runs inside the opening transaction)."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise IntegrityError(
                f"{self.path} has schema version {version}, newer than this genarch's "
                f"{SCHEMA_VERSION}: upgrade genarch to open it"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[step](db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if self.config.pseudonymise_users:
            self._check_key(db)

    def _check_key(self, db: sqlite3.Connection) -> None:
        check = hmac.new(self._secret(), _KEY_CHECK, hashlib.sha256).hexdigest()
        row = db.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta (name, value) VALUES ('key_check', ?)", (check,))
        elif not hmac.compare_digest(row[0], check):
            raise IntegrityError(
                f"{self.path}: the pseudonym key is not the one this store was created with"
            )

    def _secret(self) -> bytes:
        if self._key is None:
            self._key = self._load_or_create_key()
        return self._key

    def _load_or_create_key(self) -> bytes:
        return load_or_create_key(self.key_path)

    # ---------------------------------------------------------- rows

    def _user_key(self, user: str | None) -> str | None:
        if user is None or not self.config.pseudonymise_users or _PSEUDONYM.match(user):
            return user
        digest = hmac.new(self._secret(), user.encode("utf-8"), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest

    def _check_sizes(self, feedback: AnyFeedback, where: str) -> None:
        fields: list[tuple[str, object]] = list(feedback)
        fields += [(f"metadata.{k}", v) for k, v in feedback.metadata.items()]
        check_text_sizes(
            ((f"{where}{feedback.kind}.{name}", value) for name, value in fields),
            limit=self.config.max_text_bytes,
            setting="SQLiteFeedbackStoreConfig.max_text_bytes",
        )

    def _row(self, stored: StoredFeedback, where: str = "") -> tuple[Any, ...]:
        feedback = stored.feedback
        self._check_sizes(feedback, where)
        user_key = self._user_key(feedback.user)
        body = feedback.model_copy(update={"user": user_key}).model_dump_json()
        return (
            stored.id,
            feedback.kind,
            _micros(feedback.created_at),
            _micros(stored.recorded_at),
            feedback.model_name,
            feedback.model_version,
            feedback.response_id,
            user_key,
            body,
        )

    _INSERT = (
        "INSERT INTO feedback (id, kind, created_us, recorded_us, model_name, model_version, "
        "response_id, user_key, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    _COLUMNS = "seq, id, recorded_us, body"

    def _stored(self, row: tuple[Any, ...]) -> StoredFeedback:
        _, feedback_id, recorded_us, body = row
        try:
            return StoredFeedback.parse(
                {
                    "id": feedback_id,
                    "feedback": json.loads(body),
                    "recorded_at": _moment(recorded_us),
                }
            )
        except (InvalidInputError, ValueError) as error:
            raise IntegrityError(
                f"{self.path}: feedback {feedback_id!r} is corrupt: {error}"
            ) from None

    # ---------------------------------------------------------- the protocol

    def record(self, feedback: AnyFeedback) -> str:
        """Store one piece of feedback; return its id once it is committed to disk.

        Raises:
            InvalidInputError: not a feedback record, or a text field over
                ``max_text_bytes`` (the message names the field); nothing is stored.
        """
        if not isinstance(feedback, AnyFeedback):
            raise InvalidInputError(
                f"record expected a Rating, Correction or Preference, got {type(feedback).__name__}"
            )
        stored = StoredFeedback(id=secrets.token_hex(16), feedback=feedback)
        row = self._row(stored)
        self._db.write(lambda db: db.execute(self._INSERT, row))
        return stored.id

    def get(self, feedback_id: str) -> StoredFeedback:
        """The stored feedback with this id (``user`` as stored: a pseudonym by default).

        Raises:
            NotFoundError: no feedback has this id.
        """
        sql = f"SELECT {self._COLUMNS} FROM feedback WHERE id = ?"
        rows = self._db.read(sql, [feedback_id]) if isinstance(feedback_id, str) else []
        if not rows:
            raise NotFoundError(f"no feedback {feedback_id!r} in {self.path}")
        return self._stored(rows[0])

    def query(
        self,
        filters: FeedbackFilter | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> FeedbackPage:
        """One page of the feedback ``filters`` selects, in recording order.

        Raises:
            InvalidInputError: ``limit`` outside 1..``MAX_PAGE_SIZE``, a cursor
                this store did not make, or ``filters`` not a ``FeedbackFilter``.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"limit must be an int in 1..{MAX_PAGE_SIZE}, got {limit!r}")
        after = 0
        if cursor is not None:
            match = re.fullmatch(r"seq:(\d{1,19})", cursor) if isinstance(cursor, str) else None
            if match is None:
                raise InvalidInputError(f"not a cursor of this store: {cursor!r}")
            after = int(match[1])
        where, parameters = self._where(filters)
        sql = f"SELECT {self._COLUMNS} FROM feedback WHERE seq > ? {where} ORDER BY seq LIMIT ?"
        rows = self._db.read(sql, [after, *parameters, limit + 1])
        items = tuple(self._stored(row) for row in rows[:limit])
        next_cursor = f"seq:{rows[limit - 1][0]}" if len(rows) > limit else None
        return FeedbackPage(items=items, next_cursor=next_cursor)

    def _where(self, filters: FeedbackFilter | None) -> tuple[str, list[Any]]:
        if filters is None:
            return "", []
        if not isinstance(filters, FeedbackFilter):
            raise InvalidInputError(
                f"filters must be a FeedbackFilter, got {type(filters).__name__}"
            )
        clauses: list[str] = []
        parameters: list[Any] = []
        equal = {
            "kind": filters.kind,
            "model_name": filters.model_name,
            "model_version": filters.model_version,
            "response_id": filters.response_id,
            "user_key": self._user_key(filters.user),
        }
        for column, value in equal.items():
            if value is not None:
                clauses.append(f"AND {column} = ?")
                parameters.append(value)
        if filters.since is not None:
            clauses.append("AND created_us >= ?")
            parameters.append(_micros(filters.since))
        if filters.until is not None:
            clauses.append("AND created_us < ?")
            parameters.append(_micros(filters.until))
        return " ".join(clauses), parameters

    def scan(self, filters: FeedbackFilter | None = None) -> Iterator[StoredFeedback]:
        """Every record ``filters`` selects, in recording order, read a page at a time."""
        self._where(filters)  # bad filters fail here, not at the first next()
        return self._scan(filters)

    def _scan(self, filters: FeedbackFilter | None) -> Iterator[StoredFeedback]:
        cursor: str | None = None
        while True:
            page = self.query(filters, limit=_SCAN_PAGE, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def forget_user(self, user: str) -> int:
        """Delete every record of ``user`` (a raw id or its pseudonym); return how many went.

        Deleted rows are overwritten in the file (``secure_delete``) and the
        write-ahead log is checkpointed and truncated when no reader holds it.

        Raises:
            InvalidInputError: ``user`` is not a non-empty string.
        """
        if not isinstance(user, str) or not user:
            raise InvalidInputError(f"forget_user expected a non-empty user id, got {user!r}")
        key = self._user_key(user)
        removed = self._db.write(
            lambda db: db.execute("DELETE FROM feedback WHERE user_key = ?", (key,)).rowcount
        )
        with self._db.lock, contextlib.suppress(sqlite3.OperationalError):
            self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(removed)

    def close(self) -> None:
        """Close the connection; later calls raise :class:`~genarch.errors.GenarchError`."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------- JSONL

    def export_jsonl(
        self, path: str | os.PathLike[str], filters: FeedbackFilter | None = None
    ) -> int:
        """Write the selected records, one ``StoredFeedback`` JSON object a line; return the count.

        The file is written atomically; user ids appear as stored (pseudonyms by default).
        """
        return _jsonl.export_feedback(path, self.scan(filters))

    def export_preferences_jsonl(
        self, path: str | os.PathLike[str], filters: FeedbackFilter | None = None
    ) -> int:
        """Write ``{"prompt", "chosen", "rejected"}`` lines, the layout preference trainers read.

        The pairs come from :func:`~genarch.feedback.preference_pairs` (preferences,
        and corrections as corrected over original); pairs whose outputs are
        references rather than text are left out. Returns the number of lines.
        """
        return _jsonl.export_preferences(path, self.scan(filters))

    def import_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Add the records of a file :meth:`export_jsonl` wrote (ids kept); return the count.

        Every line is checked before anything is written, and all rows go in one
        transaction: on any error nothing is imported. Users already pseudonymised
        (``hmac-sha256:...``) are kept as they are.

        Raises:
            InvalidInputError: invalid UTF-8, invalid JSON or fields, a field over
                the size limit, or an id already present — naming the line (and field).
            NotFoundError: the file does not exist.
        """
        source = Path(path)
        rows = [
            (number, self._row(stored, f"{source.name}: line {number}: "))
            for number, stored in _jsonl.read_feedback(source)
        ]

        def insert_all(db: sqlite3.Connection) -> int:
            for number, row in rows:
                try:
                    db.execute(self._INSERT, row)
                except sqlite3.IntegrityError:
                    raise InvalidInputError(
                        f"{source.name}: line {number}: id: {row[0]!r} is already in the store"
                    ) from None
            return len(rows)

        return self._db.write(insert_all)
