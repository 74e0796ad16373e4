"""A human review queue for model outputs, with an append-only audit trail.

An item (a prompt, the model's response, which model and version and request
produced it, and the flags evaluators raised) enters as ``pending`` and is
decided once: ``approved``, ``rejected`` or ``corrected`` (the reviewer
supplies a better response). Every decision names its reviewer and a reason
(optional when approving), and every change — the submission and the decision
— is appended to the audit trail.

Design:

* **Its own SQLite file**, not the feedback store's: the audit trail is kept
  forever while the store erases users' rows on request, the two schemas are
  versioned apart (``PRAGMA user_version``), and reviewers' tools can be given
  the queue without the feedback. A file that holds other tables (such as a
  feedback store) is refused. Queue items carry no user id.
* **Durable and concurrent** like the store: WAL mode, ``synchronous=FULL``,
  ``busy_timeout`` and retry on every connection; each call is one
  ``BEGIN IMMEDIATE`` transaction, committed before it returns.
* **Exactly one decision wins.** A decision reads the item's state and writes
  it in one write-locked transaction, so when two reviewers decide the same
  item at once one succeeds and the other gets
  :class:`~genarch.errors.InvalidInputError` naming the state the item is now
  in, who decided it and when.
* **The database enforces the rules too**: triggers refuse any ``UPDATE`` or
  ``DELETE`` on the audit trail, any ``DELETE`` of an item and any change to a
  decided item, whoever opens the file.
* **Corrections become preferences** through :meth:`ReviewQueue.preferences`,
  which *returns* ``Preference`` records (the correction chosen over the
  original response); recording them in a
  :class:`~genarch.protocols.FeedbackLoop` is the caller's one line, so the
  queue never writes into another store behind your back.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Self, get_args

from pydantic import Field

from genarch.configured import Configured
from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.feedback._limits import check_text_sizes
from genarch.feedback._sqlite import DurableConnection
from genarch.feedback.review_records import (
    ReviewDecision,
    ReviewEvent,
    ReviewItem,
    ReviewPage,
    ReviewState,
)
from genarch.feedback.review_schema import (
    ITEM_COLUMNS,
    REVIEW_MIGRATIONS,
    REVIEW_SCHEMA_VERSION,
    event_from_row,
    insert_item,
    item_from_row,
    select_events,
    update_decided,
)
from genarch.schemas import MAX_PAGE_SIZE, Config, Output, Preference, Record

__all__ = ["ReviewQueue", "ReviewQueueConfig"]

_PAGE = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ReviewQueueConfig(Config):
    """How a :class:`ReviewQueue` limits and waits."""

    max_text_bytes: Annotated[int, Field(ge=1)] = 1_000_000
    """Largest UTF-8 size of any one text field (prompt, response, correction, reason, ...)."""
    busy_timeout_ms: Annotated[int, Field(ge=0)] = 5_000
    """SQLite's own wait for a lock, on every connection."""
    busy_retry_seconds: Annotated[float, Field(gt=0)] = 60.0
    """How long a write keeps retrying after ``SQLITE_BUSY`` before giving up."""


class ReviewQueue(Configured[ReviewQueueConfig]):
    """Outputs awaiting human review, in one SQLite file (see the module docs).

    The file is opened (created, migrated) on first use, not by the constructor.

    Args:
        path: the queue's database file (not a feedback store's).
        config: a :class:`ReviewQueueConfig` (or its fields as keywords).

    Example:
        >>> import tempfile
        >>> with ReviewQueue(tempfile.mkdtemp() + "/review.db") as queue:
        ...     item_id = queue.submit("2+2?", "5", flags=["wrong-answer"])
        ...     queue.correct(item_id, "4", reviewer="ana", reason="arithmetic").state
        'corrected'
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: ReviewQueueConfig | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        self.path = Path(path)
        self._db = DurableConnection(
            self.path,
            "review queue",
            self._migrate,
            busy_timeout_ms=self.config.busy_timeout_ms,
            busy_retry_seconds=self.config.busy_retry_seconds,
        )

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if (version == 0 and tables - {"sqlite_sequence"}) or (
            version > 0 and "review_items" not in tables
        ):
            raise IntegrityError(
                f"{self.path} holds other tables ({', '.join(sorted(tables))}), not a review "
                "queue: give the queue its own file"
            )
        if version > REVIEW_SCHEMA_VERSION:
            raise IntegrityError(
                f"{self.path} has review schema version {version}, newer than this genarch's "
                f"{REVIEW_SCHEMA_VERSION}: upgrade genarch to open it"
            )
        for step in range(version + 1, REVIEW_SCHEMA_VERSION + 1):
            REVIEW_MIGRATIONS[step](db)
        db.execute(f"PRAGMA user_version = {REVIEW_SCHEMA_VERSION}")

    def _check_sizes(self, record: Record) -> None:
        fields: list[tuple[str, object]] = [
            (f"{type(record).__name__}.{name}", value)
            for name, value in record
            if name not in ("id", "item_id")  # ours, or looked up, never stored
        ]
        if isinstance(record, ReviewItem):
            fields += [(f"ReviewItem.flags.{i}", flag) for i, flag in enumerate(record.flags)]
        check_text_sizes(
            fields, limit=self.config.max_text_bytes, setting="ReviewQueueConfig.max_text_bytes"
        )

    def _item(self, row: tuple[Any, ...]) -> ReviewItem:
        try:
            return item_from_row(row)
        except ValueError as error:  # InvalidInputError and pydantic's errors are ValueErrors
            raise IntegrityError(
                f"{self.path}: review item {row[1]!r} is corrupt: {error}"
            ) from None

    # ---------------------------------------------------------- submitting

    def submit(
        self,
        prompt: str,
        response: Output,
        *,
        model_name: str | None = None,
        model_version: str | None = None,
        response_id: str | None = None,
        flags: Iterable[str] = (),
    ) -> str:
        """Put one output in the queue as ``pending``; return the item's id once committed.

        Args:
            prompt: what the model was asked.
            response: what it answered: text, or an :class:`~genarch.schemas.OutputRef`.
            model_name: the model that answered.
            model_version: its version.
            response_id: the request's id, to find it again.
            flags: what evaluators flagged, e.g. ``["toxicity"]`` (a list, not one string).

        Raises:
            InvalidInputError: an empty prompt, a response that is not an output,
                flags that are not a list of non-empty strings, or a text over
                ``max_text_bytes`` — naming the field; nothing is stored.
        """
        if isinstance(flags, str | bytes):
            raise InvalidInputError(
                f"ReviewItem.flags: expected a list of strings, got the string {flags!r}"
            )
        item = ReviewItem(
            id=secrets.token_hex(16),
            prompt=prompt,
            response=response,
            model_name=model_name,
            model_version=model_version,
            response_id=response_id,
            flags=tuple(flags) if isinstance(flags, Iterable) else flags,
        )
        self._check_sizes(item)
        self._db.write(lambda db: insert_item(db, item))
        return item.id

    # ---------------------------------------------------------- deciding

    def approve(self, item_id: str, *, reviewer: str, reason: str | None = None) -> ReviewItem:
        """Approve a pending item as it is; return it as decided.

        Raises:
            InvalidInputError: the item is not pending (the message names its
                state, reviewer and time), or a blank reviewer.
            NotFoundError: no item has this id.
        """
        return self._decide(
            "approved", ReviewDecision(item_id=item_id, reviewer=reviewer, reason=reason)
        )

    def reject(self, item_id: str, *, reviewer: str, reason: str) -> ReviewItem:
        """Reject a pending item; ``reason`` is required. Return it as decided.

        Raises:
            InvalidInputError: the item is not pending, or a blank reviewer or reason.
            NotFoundError: no item has this id.
        """
        self._require_reason(reason)
        return self._decide(
            "rejected", ReviewDecision(item_id=item_id, reviewer=reviewer, reason=reason)
        )

    def correct(
        self, item_id: str, correction: Output, *, reviewer: str, reason: str
    ) -> ReviewItem:
        """Replace a pending item's response with ``correction``; return it as decided.

        A corrected item is decided (the reviewer's correction *is* the
        approval) and yields a preference in :meth:`preferences`.

        Raises:
            InvalidInputError: the item is not pending, the correction equals the
                response, or a blank reviewer or reason.
            NotFoundError: no item has this id.
        """
        self._require_reason(reason)
        decision = ReviewDecision(
            item_id=item_id, reviewer=reviewer, reason=reason, correction=correction
        )
        return self._decide("corrected", decision)

    @staticmethod
    def _require_reason(reason: object) -> None:
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError(f"reason: a non-empty reason is required, got {reason!r}")

    def _decide(self, state: ReviewState, decision: ReviewDecision) -> ReviewItem:
        self._check_sizes(decision)

        def work(db: sqlite3.Connection) -> ReviewItem:
            # BEGIN IMMEDIATE holds the write lock from here to COMMIT: no other
            # decision can slip between this read and the update below
            found = db.execute(
                f"SELECT {ITEM_COLUMNS} FROM review_items WHERE id = ?", (decision.item_id,)
            ).fetchall()
            if not found:
                raise NotFoundError(f"no review item {decision.item_id!r} in {self.path}")
            current = self._item(found[0])
            if current.state != "pending":
                raise InvalidInputError(
                    f"review item {current.id!r} is {current.state} (by {current.reviewer} at "
                    f"{current.decided_at:%Y-%m-%d %H:%M:%S} UTC), not pending: only a pending "
                    f"item can be {state}"
                )
            if decision.correction is not None and decision.correction == current.response:
                raise InvalidInputError("correction: it is the same as the item's response")
            now = _now()
            decided = current.model_copy(
                update={
                    "state": state,
                    "correction": decision.correction,
                    "reviewer": decision.reviewer,
                    "reason": decision.reason,
                    "decided_at": now,
                }
            )
            if not update_decided(db, decided):  # unreachable under the write lock
                raise IntegrityError(f"{self.path}: review item {decided.id!r} changed under us")
            return decided

        return self._db.write(work)

    # ---------------------------------------------------------- reading

    def get(self, item_id: str) -> ReviewItem:
        """The item with this id, in its current state.

        Raises:
            NotFoundError: no item has this id.
        """
        sql = f"SELECT {ITEM_COLUMNS} FROM review_items WHERE id = ?"
        rows = self._db.read(sql, [item_id]) if isinstance(item_id, str) else []
        if not rows:
            raise NotFoundError(f"no review item {item_id!r} in {self.path}")
        return self._item(rows[0])

    def pending(
        self, *, flag: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> ReviewPage:
        """One page of pending items, oldest submission first (keyset pagination).

        Following ``next_cursor`` to the end visits every item that stays
        pending exactly once, however many are decided meanwhile.

        Args:
            flag: only items carrying this flag.
            limit: 1 to :data:`~genarch.schemas.MAX_PAGE_SIZE` items.
            cursor: the previous page's ``next_cursor``.

        Raises:
            InvalidInputError: ``limit`` out of range or a cursor this queue did not make.
        """
        return self._page("pending", flag, limit, cursor)

    def items(
        self,
        state: ReviewState | None = None,
        *,
        flag: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ReviewPage:
        """Like :meth:`pending`, for items in any ``state`` (``None``: all of them)."""
        if state is not None and state not in get_args(ReviewState):
            raise InvalidInputError(
                f"state must be one of {get_args(ReviewState)} or None, got {state!r}"
            )
        return self._page(state, flag, limit, cursor)

    def _page(
        self, state: str | None, flag: str | None, limit: int, cursor: str | None
    ) -> ReviewPage:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"limit must be an int in 1..{MAX_PAGE_SIZE}, got {limit!r}")
        if flag is not None and not isinstance(flag, str):
            raise InvalidInputError(f"flag must be a string or None, got {type(flag).__name__}")
        after = self._after(cursor)
        clauses: list[str] = ["seq > ?"]
        parameters: list[object] = [after]
        if state is not None:
            clauses.append("state = ?")
            parameters.append(state)
        if flag is not None:
            clauses.append("EXISTS (SELECT 1 FROM json_each(flags) WHERE value = ?)")
            parameters.append(flag)
        sql = (
            f"SELECT {ITEM_COLUMNS} FROM review_items WHERE {' AND '.join(clauses)} "
            "ORDER BY seq LIMIT ?"
        )
        rows = self._db.read(sql, [*parameters, limit + 1])
        items = tuple(self._item(row) for row in rows[:limit])
        next_cursor = f"seq:{rows[limit - 1][0]}" if len(rows) > limit else None
        return ReviewPage(items=items, next_cursor=next_cursor)

    @staticmethod
    def _after(cursor: str | None) -> int:
        if cursor is None:
            return 0
        match = re.fullmatch(r"seq:(\d{1,19})", cursor) if isinstance(cursor, str) else None
        if match is None:
            raise InvalidInputError(f"not a cursor of this review queue: {cursor!r}")
        return int(match[1])

    def counts(self) -> dict[str, int]:
        """How many items are in each state (every state listed, zeros included)."""
        rows = self._db.read("SELECT state, COUNT(*) FROM review_items GROUP BY state", [])
        return dict.fromkeys(get_args(ReviewState), 0) | dict(rows)

    def audit_trail(self, item_id: str | None = None) -> Iterator[ReviewEvent]:
        """Every event (of one item, or of all), in the order they happened."""
        if item_id is not None and not isinstance(item_id, str):
            raise InvalidInputError(f"item_id must be a string or None, got {item_id!r}")
        return self._events(item_id, None)

    def _events(self, item_id: str | None, action: str | None) -> Iterator[ReviewEvent]:
        after = 0
        where = "".join(
            f" AND {column} = ?" for column, v in (("item_id", item_id), ("action", action)) if v
        )
        parameters = [v for v in (item_id, action) if v]
        while True:
            rows = self._db.read(select_events(where), [after, *parameters, _PAGE])
            yield from (event_from_row(row) for row in rows)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def preferences(self) -> Iterator[Preference]:
        """Every corrected item as a preference: the correction chosen over the response.

        In the order the corrections were made, read from the audit trail. Each
        carries the item's prompt, model name and version and response id,
        ``created_at`` = the decision time, and ``metadata`` with
        ``review_item`` (the item id) and ``reviewer``. The preferences are
        returned, not stored: ``for p in queue.preferences(): store.record(p)``.
        """
        for event in self._events(None, "corrected"):
            item = self.get(event.item_id)
            if item.correction is None:
                raise IntegrityError(f"{self.path}: corrected item {item.id!r} has no correction")
            yield Preference(
                prompt=item.prompt,
                chosen=item.correction,
                rejected=item.response,
                model_name=item.model_name,
                model_version=item.model_version,
                response_id=item.response_id,
                created_at=event.at,
                metadata={"review_item": item.id, "reviewer": item.reviewer},
            )

    # ---------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close the connection; later calls raise :class:`~genarch.errors.GenarchError`."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
