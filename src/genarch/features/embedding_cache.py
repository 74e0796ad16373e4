"""A content-addressed cache of embeddings: re-indexing embeds only what changed.

:class:`CachedExtractor` wraps any text
:class:`~genarch.protocols.FeatureExtractor` and keeps every vector it has
computed in a SQLite file, keyed by ``SHA-256(model fingerprint, text)``. A
second pass over a corpus in which a few chunks changed embeds just those
chunks; everything else is read back. It is itself a ``FeatureExtractor``,
so retrievers, vector stores and pipelines take it unchanged.

**Invalidation.** The *model fingerprint* is part of every key. By default
it is computed from the extractor (:func:`model_fingerprint`: its class, its
config and the bytes of every weight tensor), so a fine-tuned or replaced
model never reads its predecessor's vectors: they simply miss, and
:meth:`CachedExtractor.prune` deletes them. Pass ``fingerprint=`` when the
extractor's identity lives elsewhere (a remote model, say) — then changing it
is your responsibility.

**Storage.** One SQLite file in WAL mode; each vector is stored as float32
bytes with its dimension. Writes of one ``extract`` call are one transaction,
so a crash loses at most that call's new vectors, never a stored one. A row
whose bytes do not match its dimension is refused with
:class:`~genarch.errors.IntegrityError`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from genarch.errors import IntegrityError, InvalidInputError
from genarch.protocols import FeatureExtractor
from genarch.validation import describe

__all__ = [
    "CacheStats",
    "CachedExtractor",
    "default_embedding_cache",
    "encoder_fingerprint",
    "model_fingerprint",
]

PathLike = str | os.PathLike[str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    key BLOB PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_fingerprint ON vectors (fingerprint);
"""


def default_embedding_cache(environ: Mapping[str, str] | None = None) -> Path:
    """Where genarch keeps embeddings between runs (``genarch quickstart`` does).

    ``embeddings.sqlite`` in ``$GENARCH_CACHE_DIR`` when it is set, else in
    ``$XDG_CACHE_HOME/genarch``, else in ``~/.cache/genarch``. The folder is
    not created here. Delete the file to start afresh: vectors are keyed by
    model fingerprint and text, so a stale one is never read.

    Args:
        environ: the environment to read (default ``os.environ``).

    Examples:
        >>> str(default_embedding_cache({"GENARCH_CACHE_DIR": "/data/cache"}))
        '/data/cache/embeddings.sqlite'
        >>> str(default_embedding_cache({"XDG_CACHE_HOME": "/x", "HOME": "/home/me"}))
        '/x/genarch/embeddings.sqlite'
    """
    env = os.environ if environ is None else environ
    if env.get("GENARCH_CACHE_DIR"):
        folder = Path(env["GENARCH_CACHE_DIR"])
    elif env.get("XDG_CACHE_HOME"):
        folder = Path(env["XDG_CACHE_HOME"]) / "genarch"
    else:
        home = env.get("HOME")
        folder = (Path(home) if home else Path.home()) / ".cache" / "genarch"
    return folder / "embeddings.sqlite"


def model_fingerprint(extractor: object) -> str:
    """A SHA-256 of what determines ``extractor``'s vectors: class, config, weights.

    Weights are every tensor of ``state_dict()`` when the extractor has one,
    else of every ``nn.Module`` attribute; the config is its JSON when the
    extractor has a pydantic ``config``. Two extractors with equal class,
    config and weights share a fingerprint; any changed weight changes it.
    """
    digest = hashlib.sha256()
    kind = type(extractor)
    digest.update(f"{kind.__module__}.{kind.__qualname__}".encode())
    config = getattr(extractor, "config", None)
    if isinstance(config, BaseModel):
        digest.update(config.model_dump_json().encode())
    for name, tensor in _tensors(extractor):
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def encoder_fingerprint(encoder: object) -> str:
    """``encoder``'s own ``fingerprint`` when it has one (a :class:`CachedExtractor`
    gives its model's), else :func:`model_fingerprint` of it: what a part learned
    on an encoder's vectors (a query adapter, an answer gate) records and checks.

    Raises:
        InvalidInputError: ``encoder`` is not a feature extractor (no ``extract``).
    """
    if isinstance(encoder, str) or not callable(getattr(encoder, "extract", None)):
        raise InvalidInputError(
            f"encoder_fingerprint expected a FeatureExtractor (with extract), got {describe(encoder)}"
        )
    given = getattr(encoder, "fingerprint", None)
    return given if isinstance(given, str) else model_fingerprint(encoder)


def _tensors(extractor: object) -> Iterator[tuple[str, torch.Tensor]]:
    state_dict = getattr(extractor, "state_dict", None)
    if callable(state_dict):
        state = state_dict()
        if isinstance(state, dict):
            for name in sorted(state):
                if isinstance(state[name], torch.Tensor):
                    yield name, state[name]
            return
    for attribute in sorted(vars(extractor)) if hasattr(extractor, "__dict__") else ():
        module = getattr(extractor, attribute)
        if isinstance(module, nn.Module):
            for name, tensor in sorted(module.state_dict().items()):
                yield f"{attribute}.{name}", tensor


class CacheStats:
    """Hits and misses of a :class:`CachedExtractor` since it was opened."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"CacheStats(hits={self.hits}, misses={self.misses})"


class CachedExtractor:
    """A :class:`~genarch.protocols.FeatureExtractor` that remembers every text it embedded.

    Args:
        extractor: the text extractor to cache.
        path: the SQLite file (created if missing; ``":memory:"`` for a cache
            that lives as long as this object).
        fingerprint: the model's identity in the keys (default:
            :func:`model_fingerprint` of ``extractor``).

    Raises:
        InvalidInputError: ``extractor`` is not a FeatureExtractor, or
            ``fingerprint`` is not a non-empty string.

    Examples:
        >>> from genarch.features import HashingVectorizer
        >>> cached = CachedExtractor(HashingVectorizer(dim=8), ":memory:")
        >>> first = cached.extract(["a b", "c d"])
        >>> again = cached.extract(["c d", "e f"])  # "c d" is read back
        >>> cached.stats
        CacheStats(hits=1, misses=3)
        >>> bool((again[0] == first[1]).all())
        True
    """

    def __init__(
        self, extractor: FeatureExtractor[str], path: PathLike, *, fingerprint: str | None = None
    ) -> None:
        if not isinstance(extractor, FeatureExtractor):
            raise InvalidInputError(
                f"CachedExtractor needs a FeatureExtractor (dim, extract), got {describe(extractor)}"
            )
        if fingerprint is not None and (not isinstance(fingerprint, str) or not fingerprint):
            raise InvalidInputError(
                f"fingerprint must be a non-empty str, got {describe(fingerprint)}"
            )
        self.extractor = extractor
        self.fingerprint = fingerprint or model_fingerprint(extractor)
        self.path = str(path)
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @property
    def dim(self) -> int:
        """The wrapped extractor's dimension."""
        return self.extractor.dim

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.fingerprint}\0{text}".encode()).digest()

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        """The vectors of ``items``: stored ones read back, the others computed in one call.

        Raises:
            InvalidInputError: ``items`` is not a sequence of strings.
            IntegrityError: a stored vector is corrupt.
        """
        if isinstance(items, str) or not isinstance(items, Sequence):
            raise InvalidInputError(
                f"CachedExtractor.extract expected a list of str, got {describe(items)}"
            )
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise InvalidInputError(f"items[{index}] must be a str, got {describe(item)}")
        dim = self.dim
        keys = [self._key(text) for text in items]
        with self._lock:
            found = self._read(set(keys), dim)
            missing = list(dict.fromkeys(k for k in keys if k not in found))
            self.stats.hits += sum(1 for k in keys if k in found)
            self.stats.misses += len(missing)
            if missing:
                first = {k: i for i, k in reversed(list(enumerate(keys)))}
                texts = [items[first[k]] for k in missing]
                computed = self.extractor.extract(texts).detach().to("cpu", torch.float32)
                if computed.shape != (len(texts), dim):
                    raise InvalidInputError(
                        f"the wrapped extractor returned shape {tuple(computed.shape)} "
                        f"for {len(texts)} items of dim {dim}"
                    )
                rows = computed.numpy()
                with self._db:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                        [
                            (k, self.fingerprint, dim, rows[i].tobytes())
                            for i, k in enumerate(missing)
                        ],
                    )
                found.update({k: rows[i] for i, k in enumerate(missing)})
        if not keys:
            return torch.zeros((0, dim), dtype=torch.float32)
        return torch.from_numpy(np.stack([found[k] for k in keys]).astype(np.float32, copy=False))

    def _read(self, keys: set[bytes], dim: int) -> dict[bytes, Any]:
        found: dict[bytes, Any] = {}
        wanted = list(keys)
        for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, dim, vector FROM vectors WHERE key IN ({marks})", chunk
            )
            for key, stored_dim, blob in rows:
                if stored_dim != dim or len(blob) != 4 * dim:
                    raise IntegrityError(
                        f"{self.path}: a stored vector has {len(blob)} bytes and dim "
                        f"{stored_dim}, expected dim {dim} ({4 * dim} bytes)"
                    )
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def __len__(self) -> int:
        """Vectors stored for this model's fingerprint."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM vectors WHERE fingerprint = ?", (self.fingerprint,)
            ).fetchone()
        return int(row[0])

    def prune(self) -> int:
        """Delete the vectors of every other model fingerprint; return how many went."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "DELETE FROM vectors WHERE fingerprint != ?", (self.fingerprint,)
            )
        return int(cursor.rowcount)

    def close(self) -> None:
        """Close the SQLite connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> CachedExtractor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"CachedExtractor({type(self.extractor).__name__}, {self.path!r}, "
            f"fingerprint={self.fingerprint[:12]}...)"
        )
