"""One durable SQLite connection: what the feedback store and the review queue share.

Every connection runs in WAL mode with ``synchronous=FULL`` (a commit is on
disk before the write returns), ``secure_delete`` and a ``busy_timeout``; a
statement that still meets ``SQLITE_BUSY`` is retried with jittered backoff
for up to ``busy_retry_seconds``, so several processes can write one file at
once. Writes run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken
first, so a read-then-write inside one transaction sees no interleaved writer.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from genarch.errors import GenarchError, IntegrityError, NotFoundError

__all__ = ["DurableConnection"]

T = TypeVar("T")
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED (extended codes share the low byte)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(error) or "busy" in str(error)


class DurableConnection:
    """A lazily opened, thread-safe SQLite connection with durable, retried transactions.

    Args:
        path: the database file.
        what: how errors name the file's owner (``"feedback store"``).
        setup: run once in a ``BEGIN IMMEDIATE`` transaction when the file is
            opened (create or migrate the schema); may raise to refuse the file.
        busy_timeout_ms: SQLite's own wait for a lock.
        busy_retry_seconds: how long a statement keeps retrying after ``SQLITE_BUSY``.
    """

    def __init__(
        self,
        path: Path,
        what: str,
        setup: Callable[[sqlite3.Connection], None],
        *,
        busy_timeout_ms: int,
        busy_retry_seconds: float,
    ) -> None:
        self.path = path
        self.what = what
        self._setup = setup
        self._busy_timeout_ms = busy_timeout_ms
        self._busy_retry_seconds = busy_retry_seconds
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self.lock = threading.RLock()

    def retry(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt``, again after ``SQLITE_BUSY``, until it succeeds or time is up."""
        deadline = time.monotonic() + self._busy_retry_seconds
        delay = 0.002
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: writers do not march in step
            delay = min(delay * 2, 0.1)

    def connection(self) -> sqlite3.Connection:
        """The open connection (opened, set up, on first use).

        Raises:
            GenarchError: the connection was closed.
        """
        with self.lock:
            if self._closed:
                raise GenarchError(f"the {self.what} {self.path} is closed")
            if self._db is None:
                self._db = self._open()
            return self._db

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self.lock
            )
        except sqlite3.Error as error:
            raise NotFoundError(f"cannot open the {self.what} {self.path}: {error}") from None
        try:
            db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            mode = self.retry(lambda: db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            if mode != "wal":
                raise IntegrityError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA secure_delete = ON")
            self.retry(lambda: self._transaction(db, self._setup))
        except sqlite3.DatabaseError as error:
            db.close()
            raise IntegrityError(f"{self.path} is not a readable {self.what}: {error}") from None
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction; return once it is committed.

        An exception from ``work`` rolls everything back and propagates.
        """
        db = self.connection()
        with self.lock:
            return self.retry(lambda: self._transaction(db, work))

    def read(self, sql: str, parameters: Iterable[Any]) -> list[Any]:
        """The rows of one query."""
        db = self.connection()
        with self.lock:
            return self.retry(lambda: db.execute(sql, tuple(parameters)).fetchall())

    def close(self) -> None:
        """Close the connection; later use raises :class:`~genarch.errors.GenarchError`."""
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._closed = True
