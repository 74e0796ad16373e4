"""API keys with scopes, stored only as salted hashes in one JSON file.

A key looks like ``gk_<id>_<secret>``: ``id`` (16 hex digits) names the
record, ``secret`` is 32 random bytes (``secrets.token_urlsafe``). The file
keeps, per key, its id, name, scopes, creation and revocation times, a
random 16-byte salt and ``HMAC-SHA256(salt, secret)`` — never the key.
:meth:`ApiKeyStore.create_key` returns the key once; nothing can show it again.

Scopes: ``generate`` (text generation), ``embed`` (embeddings),
``feedback`` (recording feedback) and ``admin`` (operations on the service
itself). Each is granted explicitly; ``admin`` implies no other.

Threat model. Someone who reads the key file learns names, scopes and ids,
not keys: the secret has 256 bits of entropy, so a salted HMAC cannot be
inverted or brute-forced, and a slow hash (scrypt) would add nothing but
latency to every request. Comparison is :func:`hmac.compare_digest`
(constant time), and an unknown id costs the same comparison as a known one.
Someone who can *write* the file can add keys: protect it like the model
weights (it is created with mode 0600). Errors never repeat the key.

The file is rewritten atomically (:func:`genarch._io.atomic_write_text`)
under an exclusive ``fcntl.flock`` on a ``.lock`` sibling, so concurrent
``create_key``/``revoke`` calls from several processes lose nothing; a
serving process sees keys created or revoked by another process at its
next :meth:`~ApiKeyStore.authenticate` (it re-reads the file when it changed).

Examples:
    >>> import tempfile, pathlib
    >>> store = ApiKeyStore(pathlib.Path(tempfile.mkdtemp()) / "keys.json")
    >>> key = store.create_key("ci", ["generate"])
    >>> store.authenticate(key, "generate").name
    'ci'
    >>> key in store.path.read_text()
    False
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from genarch._io import atomic_write_text
from genarch.deploy.serving_errors import AuthenticationError, AuthorizationError
from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.schemas import Record
from genarch.validation import describe

__all__ = ["SCOPES", "ApiKey", "ApiKeyStore", "Scope"]

Scope = Literal["generate", "embed", "feedback", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
FORMAT = "genarch.api-keys/1"
_KEY = re.compile(r"^gk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class ApiKey(Record):
    """What the key file holds about one key (never the key itself).

    Attributes:
        id: the public part of the key (16 hex digits).
        name: who or what the key is for; unique among keys not revoked.
        scopes: what the key may do.
        created_at: when it was created (UTC).
        revoked_at: when it was revoked (UTC), ``None`` while it is valid.
    """

    id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: _dt.datetime
    revoked_at: _dt.datetime | None = None


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


class ApiKeyStore:
    """The key file: create, revoke, list and authenticate keys.

    Args:
        path: the JSON key file; created (with its directory) on the first
            :meth:`create_key`. A missing file holds no keys.

    Raises:
        IntegrityError: (from any method) the file exists but is not a key file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._records: dict[str, dict[str, Any]] = {}
        self._dummy_salt = secrets.token_bytes(16)

    def __repr__(self) -> str:
        return f"ApiKeyStore({str(self.path)!r})"

    # ----------------------------------------------------------------- file

    def _read(self) -> dict[str, dict[str, Any]]:
        """The records on disk, re-read only when the file changed."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._records = None, {}
            return self._records
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._stamp:
            return self._records
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
            records = {}
            for record in data["keys"]:
                ApiKey.parse({k: v for k, v in record.items() if k not in ("salt", "hash")})
                bytes.fromhex(record["salt"]), bytes.fromhex(record["hash"])
                records[record["id"]] = record
        except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as error:
            raise IntegrityError(f"{self.path} is not a readable API key file: {error}") from None
        self._stamp, self._records = stamp, records
        return records

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Hold the file lock, yield the records to change, then write them atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                self._stamp = None  # another process may have written since our last read
                records = dict(self._read())
                yield records
                text = json.dumps({"format": FORMAT, "keys": list(records.values())}, indent=2)
                atomic_write_text(self.path, text + "\n")  # a 0600 file (mkstemp)
                self._stamp = None
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # ----------------------------------------------------------------- keys

    def create_key(self, name: str, scopes: Sequence[str]) -> str:
        """Create a key for ``name`` with ``scopes`` and return it — the only time it is shown.

        Raises:
            InvalidInputError: a bad name (letters, digits, ``._@-``, at most
                128), an unknown or repeated scope, no scope, or a name that
                already has a key not revoked.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInputError(
                f"create_key: name must be 1-128 letters, digits or ._@- (starting with a "
                f"letter or digit), got {describe(name)}"
            )
        if isinstance(scopes, str) or not isinstance(scopes, Sequence) or not scopes:
            raise InvalidInputError(
                f"create_key: scopes must be a non-empty list of {list(SCOPES)}, "
                f"got {describe(scopes)}"
            )
        if unknown := [s for s in scopes if s not in SCOPES]:
            raise InvalidInputError(f"create_key: unknown scopes {unknown}; known: {list(SCOPES)}")
        if len(set(scopes)) != len(scopes):
            raise InvalidInputError(f"create_key: scopes repeat: {list(scopes)}")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        record = ApiKey(
            id=key_id,
            name=name,
            scopes=tuple(scopes),
            created_at=_dt.datetime.now(_dt.UTC),
        ).model_dump(mode="json")
        record.update(salt=salt.hex(), hash=_digest(salt, secret).hex())
        with self._changing() as records:
            if any(r["name"] == name and r["revoked_at"] is None for r in records.values()):
                raise InvalidInputError(
                    f"create_key: {name!r} already has a key; revoke it first or pick another name"
                )
            records[key_id] = record
        return f"gk_{key_id}_{secret}"

    def revoke(self, name: str) -> ApiKey:
        """Revoke the valid key of ``name`` (a name or a key id); it fails authentication from now.

        The record stays in the file, with ``revoked_at`` set.

        Raises:
            NotFoundError: no valid key has that name or id.
        """
        with self._changing() as records:
            for record in records.values():
                if record["revoked_at"] is None and name in (record["name"], record["id"]):
                    record["revoked_at"] = _dt.datetime.now(_dt.UTC).isoformat()
                    return self._public(record)
            raise NotFoundError(f"revoke: no valid API key named {name!r} in {self.path}")

    def keys(self) -> list[ApiKey]:
        """Every key in the file (revoked ones too), oldest first."""
        with self._lock:
            records = list(self._read().values())
        return sorted((self._public(r) for r in records), key=lambda k: k.created_at)

    @staticmethod
    def _public(record: dict[str, Any]) -> ApiKey:
        return ApiKey.parse({k: v for k, v in record.items() if k not in ("salt", "hash")})

    def authenticate(self, key: object, scope: str) -> ApiKey:
        """The key's record if ``key`` is valid and grants ``scope``.

        Raises:
            AuthenticationError: no key, a malformed, unknown or revoked key (401).
            AuthorizationError: a valid key without ``scope`` (403).
            InvalidInputError: ``scope`` is not one of :data:`SCOPES`.
        """
        if scope not in SCOPES:
            raise InvalidInputError(f"authenticate: unknown scope {scope!r}; known: {list(SCOPES)}")
        match = _KEY.match(key) if isinstance(key, str) else None
        if match is None:
            raise AuthenticationError(
                "missing or malformed API key (expected gk_<16 hex>_<secret>)"
            )
        key_id, secret = match.groups()
        with self._lock:
            record = self._read().get(key_id)
        if record is None:  # the same work as a known id, so timing tells nothing
            hmac.compare_digest(_digest(self._dummy_salt, secret), bytes(32))
            raise AuthenticationError("invalid API key")
        expected = bytes.fromhex(record["hash"])
        if not hmac.compare_digest(_digest(bytes.fromhex(record["salt"]), secret), expected):
            raise AuthenticationError("invalid API key")
        if record["revoked_at"] is not None:
            raise AuthenticationError("this API key was revoked")
        if scope not in record["scopes"]:
            raise AuthorizationError(
                f"the API key {record['name']!r} lacks the scope {scope!r} "
                f"(it has {list(record['scopes'])})",
                scope=scope,
            )
        return self._public(record)
