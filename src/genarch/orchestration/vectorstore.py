"""An exact, in-process vector store with metadata filters, tenants and crash-safe persistence.

:class:`ExactVectorStore` keeps every vector in one contiguous float32 tensor
(grown geometrically, so appends are amortised O(1)) and answers a batch of
queries with one matrix multiply and one ``topk`` per block of queries: exact
results, no index to train, at the speed of the machine's matmul.

Design points worth knowing:

* **Tenants.** Every entry belongs to exactly one tenant (namespace). A store
  handle is bound to one tenant when it is made (``ExactVectorStore(tenant=...)``
  or ``store.for_tenant("acme")``) and every call through that handle — upsert,
  delete, search, len — sees that tenant's entries only. The tenant is *not* a
  metadata field: it lives in its own column, so no ``where`` clause, metadata
  key or id can name, widen or escape it. The same id in two tenants is two
  different entries.
* **Filters before ranking.** ``where`` selects the candidate rows first
  (equality on every given key, vectorised over per-key columns of interned
  values) and only those are scored, so ``k`` results come back whenever ``k``
  entries match.
* **Deterministic ties.** Equal scores are ordered by position in the store
  (insertion order; an upsert of an existing id keeps its position).
* **Persistence.** ``save(directory)`` writes ``vectors.safetensors``, the ids,
  tenants and metadata in an SQLite file (``entries.sqlite``), a ``config.json``
  and a ``manifest.json`` with every file's SHA-256, into a staging directory
  that atomically replaces the old one. A crash at any moment leaves the
  previous store loadable (see :meth:`ExactVectorStore.load`).

Scores are "higher is better": the inner product for ``"inner_product"``, the
cosine similarity for ``"cosine"`` (vectors are unit-normalised when stored) and
the negated squared Euclidean distance for ``"l2"``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, Self, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, Field

from genarch._io import atomic_directory, readable_directory, sha256_file
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.schemas import Config, Hit, Metadata, MetadataValue, Record
from genarch.validation import describe

__all__ = [
    "EntryTable",
    "ExactVectorStore",
    "Metric",
    "StoreHandle",
    "TorchVectors",
    "VectorBackend",
    "VectorStoreConfig",
    "top_k_stable",
    "trusted_record",
]

logger = logging.getLogger(__name__)

RecordT = TypeVar("RecordT", bound=Record)

Metric = Literal["cosine", "inner_product", "l2"]
"""How similarity is measured; every score is "higher is better"."""

FORMAT_VERSION = 1
# Scores held at once per block of queries (512 MiB, e.g. 1,300 queries over
# 100,000 vectors): few, large gemm + topk calls, with bounded memory.
_SCORE_BLOCK_BYTES = 1 << 29
_SCALARS = (str, int, float, bool, type(None))
_HIT_FIELDS = {"id", "score", "metadata"}
_new = object.__new__
_set = object.__setattr__


def trusted_record(cls: type[RecordT], fields: set[str], values: dict[str, Any]) -> RecordT:
    """Build a frozen pydantic record from values already validated, without re-validating.

    What ``cls.model_construct`` does, minus its per-call bookkeeping (about 3x
    faster): search results are built by the thousand per call. ``fields`` must
    be the set of all field names and ``values`` must hold each of them.
    """
    record = _new(cls)
    _set(record, "__dict__", values)
    _set(record, "__pydantic_fields_set__", fields)
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record


class VectorStoreConfig(Config):
    """Settings of a vector store.

    Attributes:
        dim: length of every vector.
        metric: ``"cosine"`` (vectors are unit-normalised when stored, so
            :meth:`ExactVectorStore.get_vectors` returns unit vectors),
            ``"inner_product"`` or ``"l2"`` (score = minus the squared distance).
    """

    dim: Annotated[int, Field(ge=1)]
    metric: Metric = "cosine"


# ------------------------------------------------------------------ validation


def _check_tenant(tenant: object, where: str) -> str:
    if not isinstance(tenant, str) or not tenant:
        raise InvalidInputError(f"{where} expected a non-empty tenant name, got {describe(tenant)}")
    return tenant


def check_ids(ids: object, where: str) -> list[str]:
    """A list of distinct non-empty string ids (not a lone string)."""
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
        raise InvalidInputError(f"{where} expected a sequence of string ids, got {describe(ids)}")
    checked = list(ids)
    for index, item in enumerate(checked):
        if not isinstance(item, str) or not item:
            raise InvalidInputError(
                f"{where} expected non-empty string ids, but id {index} is {describe(item)}"
            )
    if len(set(checked)) != len(checked):
        repeated = sorted(i for i, c in Counter(checked).items() if c > 1)
        raise InvalidInputError(f"{where} got the same id more than once: {repeated[:5]}")
    return checked


def check_vectors(vectors: object, rows: int | None, dim: int, where: str) -> torch.Tensor:
    """A finite ``(rows, dim)`` float tensor, returned as contiguous CPU float32."""
    if not isinstance(vectors, torch.Tensor):
        raise InvalidInputError(f"{where} expected a torch.Tensor, got {describe(vectors)}")
    if (
        vectors.dim() != 2
        or vectors.shape[1] != dim
        or (rows is not None and vectors.shape[0] != rows)
    ):
        want = f"({rows if rows is not None else 'N'}, {dim})"
        hint = " (add a batch dimension: vector[None])" if vectors.dim() == 1 else ""
        raise InvalidInputError(f"{where} expected shape {want}, got {tuple(vectors.shape)}{hint}")
    if not (vectors.is_floating_point() or vectors.dtype in (torch.int32, torch.int64)):
        raise InvalidInputError(f"{where} expected a float tensor, got dtype {vectors.dtype}")
    out = vectors.detach().to(device="cpu", dtype=torch.float32).contiguous()
    # numpy's check: torch's threaded reductions cost milliseconds on a busy machine
    finite = np.isfinite(out.numpy())
    if not finite.all():
        bad = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise InvalidInputError(f"{where} expected finite vectors, but row {bad} holds NaN or inf")
    return out


def check_k(k: object, where: str) -> int:
    """A positive int ``k``."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidInputError(f"{where} expected k to be a positive int, got {describe(k)}")
    return k


def _check_value(value: object, where: str) -> MetadataValue:
    if not isinstance(value, _SCALARS):
        raise InvalidInputError(
            f"{where}: metadata values must be str, int, float, bool or None, got {describe(value)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"{where}: metadata values must be finite, got {value}")
    return value


def _check_mapping(mapping: object, where: str) -> Metadata:
    if not isinstance(mapping, Mapping):
        raise InvalidInputError(f"{where} expected a mapping, got {describe(mapping)}")
    out: Metadata = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"{where}: metadata keys must be non-empty str, got {key!r}")
        out[key] = _check_value(value, f"{where}[{key!r}]")
    return out


def check_metadata(metadata: object, rows: int, where: str) -> list[Metadata]:
    """``rows`` flat metadata mappings (``None`` means empty metadata for every row)."""
    if metadata is None:
        return [{} for _ in range(rows)]
    if isinstance(metadata, str | bytes | Mapping) or not isinstance(metadata, Sequence):
        raise InvalidInputError(
            f"{where} expected a sequence of metadata mappings, got {describe(metadata)}"
        )
    if len(metadata) != rows:
        raise InvalidInputError(f"{where} got {len(metadata)} metadata mappings for {rows} ids")
    return [_check_mapping(m, f"{where} metadata[{i}]") for i, m in enumerate(metadata)]


def _value_key(value: MetadataValue) -> tuple[str, MetadataValue]:
    # bool is an int in Python (True == 1); keep them apart. int and float share
    # a kind so that 1 == 1.0 matches, as in JSON and SQLite.
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if value is None:
        return ("z", None)
    return ("s", value)


# --------------------------------------------------------------------- ranking


def top_k_stable(scores: torch.Tensor, k: int) -> tuple[list[list[float]], list[list[int]]]:
    """Top ``k`` of each row, best first, equal scores ordered by column index.

    ``torch.topk`` does not define the order of ties, nor which of several
    equal scores at the boundary make the cut; this does: one ``topk`` of
    ``k + 1``, ties inside ordered in Python (cheap: ``k`` is small), and one
    more pass over a row only when equal scores straddle the cut.

    Args:
        scores: ``(Q, N)`` float tensor.
        k: how many to keep, ``1 <= k``; at most ``N`` come back.

    Returns:
        ``(values, indices)``: ``Q`` lists of ``min(k, N)`` scores and column indices.

    Examples:
        >>> top_k_stable(torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0]]), 2)
        ([[3.0, 3.0]], [[1, 2]])
    """
    n = scores.shape[1]
    k = min(k, n)
    grab = min(k + 1, n)
    top_values, top_indices = scores.topk(grab, dim=1, largest=True, sorted=True)
    values_np = top_values.numpy()
    tied: list[bool] = (values_np[:, 1:] == values_np[:, :-1]).any(axis=1).tolist()
    all_values: list[list[float]] = values_np.tolist()
    all_indices: list[list[int]] = top_indices.tolist()
    out_values, out_indices = [], []
    for row, (values, indices) in enumerate(zip(all_values, all_indices, strict=True)):
        if not tied[row]:  # the usual case: topk's order is the answer
            out_values.append(values[:k])
            out_indices.append(indices[:k])
            continue
        boundary = values[k - 1]
        if grab > k and values[k] == boundary:
            # equal scores straddle the cut: the lowest indices among them make it
            above = [(v, i) for v, i in zip(values, indices, strict=True) if v > boundary]
            equal = (scores[row] == boundary).nonzero().flatten()[: k - len(above)].tolist()
            pairs = sorted(above, key=_best_then_index) + [(boundary, i) for i in equal]
        else:
            pairs = sorted(zip(values[:k], indices[:k], strict=True), key=_best_then_index)
        out_values.append([p[0] for p in pairs])
        out_indices.append([p[1] for p in pairs])
    return out_values, out_indices


def _best_then_index(pair: tuple[float, int]) -> tuple[float, int]:
    return (-pair[0], pair[1])


# ----------------------------------------------------------------- entry table


class EntryTable:
    """Ids, tenants and metadata of the rows of a vector store, in row order.

    Shared by every backend: the backend keeps vectors in the same row order.
    Metadata is also kept column-wise, each value interned to an int code, so a
    ``where`` clause becomes a few vectorised comparisons.
    """

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []  # row -> (tenant, id)
        self.rows: dict[tuple[str, str], int] = {}
        self.metadata: list[Metadata] = []
        self.tenant_codes: dict[str, int] = {}
        self.tenant_column = torch.empty(0, dtype=torch.int32)
        self.tenant_sizes: Counter[str] = Counter()
        self.columns: dict[
            str, torch.Tensor
        ] = {}  # key -> (capacity,) int64 value codes, -1 = absent
        self.value_codes: dict[str, dict[tuple[str, MetadataValue], int]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def _grow(self, needed: int) -> None:
        capacity = self.tenant_column.shape[0]
        if needed <= capacity:
            return
        new = max(needed, 2 * capacity, 1024)
        column = torch.empty(new, dtype=torch.int32)
        column[:capacity] = self.tenant_column
        self.tenant_column = column
        for key, old in self.columns.items():
            grown = torch.full((new,), -1, dtype=torch.int64)
            grown[:capacity] = old
            self.columns[key] = grown

    def assign(self, tenant: str, ids: list[str], metadata: list[Metadata]) -> torch.Tensor:
        """Give each id a row (its existing one, or a new one at the end); set its metadata.

        Returns the ``(len(ids),)`` int64 rows, for the backend to write the vectors to.
        """
        before = len(self.keys)
        self._grow(before + len(ids))
        code = self.tenant_codes.setdefault(tenant, len(self.tenant_codes))
        rows: list[int] = []
        cleared: dict[str, list[int]] = {}  # key -> rows whose old value goes
        written: dict[str, tuple[list[int], list[int]]] = {}  # key -> (rows, value codes)
        for id_, meta in zip(ids, metadata, strict=True):
            key = (tenant, id_)
            row = self.rows.get(key)
            if row is None:
                row = len(self.keys)
                self.keys.append(key)
                self.rows[key] = row
                self.metadata.append(meta)
            else:
                for old in self.metadata[row]:
                    cleared.setdefault(old, []).append(row)
                self.metadata[row] = meta
            for name, value in meta.items():
                codes = self.value_codes.setdefault(name, {})
                targets, values = written.setdefault(name, ([], []))
                targets.append(row)
                values.append(codes.setdefault(_value_key(value), len(codes)))
            rows.append(row)
        self.tenant_sizes[tenant] += len(self.keys) - before
        self.tenant_column[before : len(self.keys)] = code  # new rows are all at the end
        for name, targets in cleared.items():
            self.columns[name][torch.tensor(targets, dtype=torch.int64)] = -1
        for name, (targets, values) in written.items():
            column = self.columns.get(name)
            if column is None:
                column = self.columns[name] = torch.full(
                    (self.tenant_column.shape[0],), -1, dtype=torch.int64
                )
            column[torch.tensor(targets, dtype=torch.int64)] = torch.tensor(
                values, dtype=torch.int64
            )
        return torch.tensor(rows, dtype=torch.int64)

    def rows_of(self, tenant: str, ids: list[str], where: str) -> list[int]:
        """Rows of ``ids`` in ``tenant``; raises NotFoundError naming unknown ids."""
        missing = [i for i in ids if (tenant, i) not in self.rows]
        if missing:
            raise NotFoundError(
                f"{where}: no entry with id(s) {missing[:5]} in tenant {tenant!r} "
                f"({self.tenant_sizes[tenant]} entries there)"
            )
        return [self.rows[(tenant, i)] for i in ids]

    def remove(self, rows: list[int]) -> torch.Tensor:
        """Drop ``rows``, keeping the order of the rest; returns the boolean keep mask."""
        n = len(self.keys)
        keep = torch.ones(n, dtype=torch.bool)
        keep[torch.tensor(rows, dtype=torch.int64)] = False
        survivors = keep.nonzero().flatten()
        m = survivors.shape[0]
        for row in rows:
            self.tenant_sizes[self.keys[row][0]] -= 1
        kept = set(survivors.tolist()) if m < n else None
        if kept is not None:
            self.keys = [key for r, key in enumerate(self.keys) if r in kept]
            self.metadata = [meta for r, meta in enumerate(self.metadata) if r in kept]
        self.rows = {key: r for r, key in enumerate(self.keys)}
        self.tenant_column[:m] = self.tenant_column[:n][survivors]
        for column in self.columns.values():
            column[:m] = column[:n][survivors]
            column[m:n] = -1
        return keep

    def candidates(
        self, tenant: str, where: Mapping[str, MetadataValue] | None
    ) -> torch.Tensor | None:
        """Rows a search through ``tenant``'s handle may rank, ascending; ``None`` means all rows.

        The tenant restriction comes from the handle, never from ``where``.
        """
        n = len(self.keys)
        only_tenant = self.tenant_sizes[tenant] == n
        if not where and only_tenant:
            return None
        code = self.tenant_codes.get(tenant)
        if code is None or self.tenant_sizes[tenant] == 0:
            return torch.empty(0, dtype=torch.int64)
        mask = None if only_tenant else self.tenant_column[:n] == code
        for key, value in (where or {}).items():
            column = self.columns.get(key)
            value_code = None if column is None else self.value_codes[key].get(_value_key(value))
            if column is None or value_code is None:
                return torch.empty(0, dtype=torch.int64)
            match = column[:n] == value_code
            mask = match if mask is None else mask & match
        assert mask is not None
        return mask.nonzero().flatten()

    def hits(self, rows: list[int], scores: list[float]) -> list[Hit]:
        """Hit records for ``rows`` (metadata copied, so callers cannot edit the store)."""
        keys, metadata, fields = self.keys, self.metadata, _HIT_FIELDS
        return [  # values are validated on the way in; skip pydantic's per-hit validation
            trusted_record(
                Hit, fields, {"id": keys[r][1], "score": s, "metadata": dict(metadata[r])}
            )
            for r, s in zip(rows, scores, strict=True)
        ]

    # ------------------------------------------------------------- persistence

    def write_sqlite(self, path: Path) -> None:
        """Write every row (tenant, id, metadata JSON) to a new SQLite file."""
        connection = sqlite3.connect(path)
        try:
            connection.execute(
                "CREATE TABLE entries (row INTEGER PRIMARY KEY, tenant TEXT NOT NULL, "
                "id TEXT NOT NULL, metadata TEXT NOT NULL, UNIQUE (tenant, id))"
            )
            connection.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?)",
                (
                    (row, tenant, id_, json.dumps(meta, sort_keys=True, allow_nan=False))
                    for row, ((tenant, id_), meta) in enumerate(
                        zip(self.keys, self.metadata, strict=True)
                    )
                ),
            )
            connection.commit()
        finally:
            connection.close()

    @classmethod
    def read_sqlite(cls, path: Path) -> EntryTable:
        """Rebuild a table from :meth:`write_sqlite`'s file."""
        table = cls()
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = connection.execute(
                "SELECT row, tenant, id, metadata FROM entries ORDER BY row"
            ).fetchall()
        except sqlite3.DatabaseError as error:
            raise IntegrityError(
                f"{path} is not a readable vector-store entry table: {error}"
            ) from None
        finally:
            connection.close()
        run_tenant: str | None = None
        run_ids: list[str] = []
        run_metas: list[Metadata] = []
        for expected, (row, tenant, id_, meta) in enumerate(rows):
            if row != expected:
                raise IntegrityError(f"{path}: rows are not contiguous (row {row} at {expected})")
            if tenant != run_tenant and run_tenant is not None:
                table.assign(run_tenant, run_ids, run_metas)  # rows keep their saved order
                run_ids, run_metas = [], []
            run_tenant = tenant
            run_ids.append(id_)
            run_metas.append(_check_mapping(json.loads(meta), f"{path} row {row}"))
        if run_tenant is not None:
            table.assign(run_tenant, run_ids, run_metas)
        return table


# ------------------------------------------------------------------ persistence


def write_store(
    directory: str | os.PathLike[str],
    config: VectorStoreConfig,
    backend: str,
    vectors: torch.Tensor,
    table: EntryTable,
) -> None:
    """Atomically replace ``directory`` with the vectors, entries, config and manifest."""
    from safetensors.torch import save_file

    with atomic_directory(directory) as staging:
        save_file({"vectors": vectors.contiguous()}, str(staging / "vectors.safetensors"))
        table.write_sqlite(staging / "entries.sqlite")
        (staging / "config.json").write_text(
            json.dumps(
                {"format": FORMAT_VERSION, "backend": backend, "config": config.model_dump()},
                indent=2,
            )
        )
        files = {
            name: sha256_file(staging / name)
            for name in ("vectors.safetensors", "entries.sqlite", "config.json")
        }
        (staging / "manifest.json").write_text(json.dumps({"sha256": files}, indent=2))
    logger.info("saved %d vectors to %s", vectors.shape[0], directory)


def _recover(target: Path) -> Path:
    """The directory to load: ``target``, or the copy a crash mid-replace left aside.

    :func:`genarch._io.atomic_directory` moves the old directory aside before it
    moves the new one in; a crash between those two renames leaves only
    ``.<name>.old-*``, which is still a complete store.
    """
    found = readable_directory(target)
    if found is None:
        raise NotFoundError(f"no vector store at {target}")
    if found != target:
        logger.warning("%s is missing; loading %s, left by an interrupted save", target, found)
    return found


def read_store(
    directory: str | os.PathLike[str],
) -> tuple[VectorStoreConfig, torch.Tensor, EntryTable]:
    """Load and verify what :func:`write_store` wrote.

    Raises:
        NotFoundError: nothing was saved there.
        IntegrityError: a file is missing, altered or inconsistent with the others.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    source = _recover(Path(directory))
    try:
        manifest = json.loads((source / "manifest.json").read_text())
        for name, digest in manifest["sha256"].items():
            if sha256_file(source / name) != digest:
                raise IntegrityError(f"{source / name} does not match its SHA-256 in manifest.json")
        saved = json.loads((source / "config.json").read_text())
        if saved.get("format") != FORMAT_VERSION:
            raise IntegrityError(f"{source} holds vector-store format {saved.get('format')!r}")
        config = VectorStoreConfig.coerce(saved["config"])
        vectors = load_file(str(source / "vectors.safetensors"))["vectors"]
    except (OSError, KeyError, ValueError, SafetensorError) as error:
        if isinstance(error, IntegrityError | ConfigError):
            raise
        raise IntegrityError(f"{source} is not a complete vector store: {error}") from None
    table = EntryTable.read_sqlite(source / "entries.sqlite")
    if vectors.dtype != torch.float32 or vectors.shape != (len(table), config.dim):
        raise IntegrityError(
            f"{source}: vectors have shape {tuple(vectors.shape)}, expected ({len(table)}, {config.dim})"
        )
    return config, vectors, table


# ------------------------------------------------------------------ the store


class VectorBackend(Protocol):
    """Where a store's vectors live, row-aligned with its :class:`EntryTable`.

    Implement this to put another index behind :class:`StoreHandle`'s tenants,
    filters, validation and persistence (see :mod:`genarch.orchestration.faiss_store`).
    """

    def write(self, rows: torch.Tensor, vectors: torch.Tensor, size: int) -> None:
        """Store ``vectors`` at ``rows`` (new rows are ``< size``, the new row count)."""

    def compact(self, keep: torch.Tensor) -> None:
        """Drop the rows where ``keep`` is False, keeping the order of the rest."""

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """The ``(len(rows), dim)`` stored vectors of ``rows``."""

    def top_k(
        self, queries: torch.Tensor, rows: torch.Tensor | None, k: int
    ) -> tuple[list[list[float]], list[list[int]]]:
        """Scores and row numbers of the best ``k`` of ``rows`` (all rows if None), ties by row."""


class TorchVectors:
    """Vectors in one contiguous float32 tensor with room to grow (amortised O(1) appends)."""

    def __init__(self, dim: int, metric: Metric) -> None:
        self.metric = metric
        self.size = 0
        self.vectors = torch.empty(0, dim, dtype=torch.float32)
        self.squared_norms = torch.empty(0, dtype=torch.float32)  # for "l2"

    def write(self, rows: torch.Tensor, vectors: torch.Tensor, size: int) -> None:
        capacity = self.vectors.shape[0]
        if size > capacity:
            new = max(size, 2 * capacity, 1024)
            grown = torch.empty(new, self.vectors.shape[1], dtype=torch.float32)
            grown[: self.size] = self.vectors[: self.size]
            norms = torch.empty(new, dtype=torch.float32)
            norms[: self.size] = self.squared_norms[: self.size]
            self.vectors, self.squared_norms = grown, norms
        self.vectors.index_copy_(0, rows, vectors)
        self.squared_norms.index_copy_(0, rows, (vectors * vectors).sum(dim=1))
        self.size = size

    def compact(self, keep: torch.Tensor) -> None:
        m = int(keep.sum())
        self.vectors[:m] = self.vectors[: self.size][keep]
        self.squared_norms[:m] = self.squared_norms[: self.size][keep]
        self.size = m

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        return self.vectors.index_select(0, rows)

    def top_k(
        self, queries: torch.Tensor, rows: torch.Tensor | None, k: int
    ) -> tuple[list[list[float]], list[list[int]]]:
        if rows is None:
            vectors, norms = self.vectors[: self.size], self.squared_norms[: self.size]
        else:
            vectors = self.vectors.index_select(0, rows)
            norms = self.squared_norms.index_select(0, rows)
        values, indices = _exact_top_k(queries, vectors, norms, k, self.metric)
        if rows is not None:
            lookup: list[int] = rows.tolist()
            indices = [[lookup[i] for i in row] for row in indices]
        return values, indices


class StoreHandle:
    """Tenants, validation, filters and persistence around a :class:`VectorBackend`.

    The shared half of :class:`ExactVectorStore` and
    :class:`~genarch.orchestration.faiss_store.FaissVectorStore`; subclasses
    only say which backend holds the vectors.
    """

    _backend_name: ClassVar[str] = "exact"

    def __init__(
        self, config: VectorStoreConfig | None = None, *, tenant: str = "default", **fields: Any
    ) -> None:
        config = VectorStoreConfig.resolve(config, fields)
        self._config = config
        self._lock = threading.RLock()
        self._table = EntryTable()
        self._backend = self._make_backend(config)
        self._tenant = _check_tenant(tenant, type(self).__name__)

    def _make_backend(self, config: VectorStoreConfig) -> VectorBackend:
        return TorchVectors(config.dim, config.metric)

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Build an empty store from a config object or mapping."""
        return cls(VectorStoreConfig.coerce(config))

    def for_tenant(self, tenant: str) -> Self:
        """A handle on the same storage that sees only ``tenant``'s entries."""
        handle = copy.copy(self)  # shares config, lock, table and backend
        handle._tenant = _check_tenant(tenant, f"{type(self).__name__}.for_tenant")
        return handle

    @property
    def config(self) -> VectorStoreConfig:
        """The frozen configuration."""
        return self._config

    @property
    def dim(self) -> int:
        """Length of every vector."""
        return self._config.dim

    @property
    def metric(self) -> Metric:
        """The similarity measure."""
        return self._config.metric

    @property
    def tenant(self) -> str:
        """The tenant this handle is bound to."""
        return self._tenant

    def tenants(self) -> list[str]:
        """Names of the tenants that hold entries in this storage, sorted."""
        with self._lock:
            return sorted(t for t, n in self._table.tenant_sizes.items() if n > 0)

    def __len__(self) -> int:
        with self._lock:
            return self._table.tenant_sizes[self._tenant]

    def __contains__(self, id_: object) -> bool:
        with self._lock:
            return (self._tenant, id_) in self._table.rows

    def ids(self) -> list[str]:
        """This tenant's ids, in store order."""
        with self._lock:
            return [i for t, i in self._table.keys if t == self._tenant]

    # ----------------------------------------------------------------- writes

    def upsert(
        self, ids: Sequence[str], vectors: torch.Tensor, metadata: Sequence[Metadata] | None = None
    ) -> None:
        """Add entries, or replace the vector and metadata of ids that exist.

        Args:
            ids: distinct non-empty ids (unique within this tenant).
            vectors: ``(len(ids), dim)`` finite float tensor.
            metadata: one flat mapping of scalars per id (default: empty).

        Raises:
            InvalidInputError: repeated ids, a wrong shape, NaN/inf, a zero
                vector under ``"cosine"``, or metadata that is not flat scalars.
                Nothing is stored when any of it is wrong.
        """
        where = f"{type(self).__name__}.upsert"
        ids = check_ids(ids, where)
        rows = check_vectors(vectors, len(ids), self.dim, where)
        metas = check_metadata(metadata, len(ids), where)
        if self.metric == "cosine" and rows.shape[0]:
            norms = rows.norm(dim=1, keepdim=True)
            if bool((norms == 0).any()):
                bad = int((norms.flatten() == 0).nonzero()[0, 0])
                raise InvalidInputError(f"{where}: row {bad} is a zero vector, which has no cosine")
            rows = torch.div(rows, norms)
        with self._lock:
            slots = self._table.assign(self._tenant, ids, metas)
            self._backend.write(slots, rows, len(self._table))

    def delete(self, ids: Sequence[str]) -> None:
        """Remove entries of this tenant by id.

        Raises:
            NotFoundError: an id is not in this tenant (nothing is deleted then).
        """
        where = f"{type(self).__name__}.delete"
        ids = check_ids(ids, where)
        with self._lock:
            rows = self._table.rows_of(self._tenant, ids, where)
            if rows:
                self._backend.compact(self._table.remove(rows))

    # ------------------------------------------------------------------ reads

    def get_vectors(self, ids: Sequence[str]) -> torch.Tensor:
        """The stored vectors of ``ids``, ``(len(ids), dim)`` (unit vectors under cosine).

        Raises:
            NotFoundError: an id is not in this tenant.
        """
        where = f"{type(self).__name__}.get_vectors"
        ids = check_ids(ids, where)
        with self._lock:
            rows = self._table.rows_of(self._tenant, ids, where)
            return self._backend.gather(torch.tensor(rows, dtype=torch.int64)).clone()

    def get_metadata(self, id_: str) -> Metadata:
        """A copy of the metadata of one id. Raises NotFoundError when unknown."""
        where = f"{type(self).__name__}.get_metadata"
        with self._lock:
            (row,) = self._table.rows_of(self._tenant, check_ids([id_], where), where)
            return dict(self._table.metadata[row])

    def search(
        self, queries: torch.Tensor, k: int, *, where: Mapping[str, MetadataValue] | None = None
    ) -> list[list[Hit]]:
        """The ``k`` best entries of this tenant for each query, best first.

        Args:
            queries: ``(Q, dim)`` finite float tensor.
            k: hits per query (fewer come back when fewer entries match).
            where: keep only entries whose metadata equals every given value
                (applied before ranking). It filters *within* the tenant: the
                tenant is not metadata and cannot be named here.

        Returns:
            ``Q`` lists of :class:`~genarch.schemas.Hit`; equal scores in store order.

        Raises:
            InvalidInputError: wrong shape or dimension, NaN/inf, ``k <= 0``,
                or a ``where`` that is not a flat mapping of scalars.
        """
        name = f"{type(self).__name__}.search"
        check_k(k, name)
        q = check_vectors(queries, None, self.dim, name)
        conditions = None if where is None else _check_mapping(where, f"{name} where")
        if self.metric == "cosine":
            q = torch.nn.functional.normalize(q, dim=1)
        with self._lock:
            table = self._table
            if not len(table):
                return [[] for _ in range(q.shape[0])]
            rows = table.candidates(self._tenant, conditions)
            if rows is not None and rows.numel() == 0:
                return [[] for _ in range(q.shape[0])]
            values, indices = self._backend.top_k(q, rows, k)
            return [table.hits(r, s) for r, s in zip(indices, values, strict=True)]

    # ------------------------------------------------------------ persistence

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write every tenant's entries to ``directory``, atomically replacing what was there.

        Any backend's save loads into any other backend.
        """
        with self._lock:
            everything = torch.arange(len(self._table), dtype=torch.int64)
            vectors = self._backend.gather(everything)
            write_store(directory, self._config, self._backend_name, vectors, self._table)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, tenant: str = "default") -> Self:
        """Load a saved store, bound to ``tenant``.

        If a crash interrupted a save between its two renames, the previous
        store (left aside as ``.<name>.old-*``) is loaded.

        Raises:
            NotFoundError: nothing was saved there.
            IntegrityError: the files are altered, truncated or inconsistent.
        """
        config, vectors, table = read_store(directory)
        store = cls(config, tenant=tenant)
        store._table = table
        store._backend.write(torch.arange(len(table), dtype=torch.int64), vectors, len(table))
        return store

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.dim}, metric={self.metric!r}, "
            f"tenant={self._tenant!r}, size={len(self)})"
        )


class ExactVectorStore(StoreHandle):
    """Exact nearest-neighbour search over vectors held in one contiguous tensor.

    Implements :class:`~genarch.protocols.VectorStore`: a batch of queries is one
    matrix multiply and one ``topk`` per block of queries. Every handle is bound
    to one tenant (``"default"`` unless given); :meth:`for_tenant` gives a handle
    on another tenant of the same storage. Thread-safe: calls are serialised by a lock.

    Args:
        config: a :class:`VectorStoreConfig`; keyword fields are shorthand (``dim=``, ``metric=``).
        tenant: the tenant this handle reads and writes.

    Examples:
        >>> import torch
        >>> store = ExactVectorStore(dim=3, metric="cosine")
        >>> vectors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
        >>> store.upsert(["a", "b"], vectors, [{"lang": "en"}, {"lang": "fr"}])
        >>> [h.id for h in store.search(torch.tensor([[0.9, 0.1, 0]]), k=2)[0]]
        ['a', 'b']
        >>> [h.id for h in store.search(torch.tensor([[0.9, 0.1, 0]]), k=2, where={"lang": "fr"})[0]]
        ['b']
        >>> len(store.for_tenant("acme"))
        0
    """


def _exact_top_k(
    queries: torch.Tensor,
    vectors: torch.Tensor,
    squared_norms: torch.Tensor,
    k: int,
    metric: Metric,
) -> tuple[list[list[float]], list[list[int]]]:
    """Scores of every (query, vector) pair by blocks of queries, and each query's top ``k``."""
    n = vectors.shape[0]
    block = max(1, _SCORE_BLOCK_BYTES // (4 * n))
    values: list[list[float]] = []
    indices: list[list[int]] = []
    for start in range(0, queries.shape[0], block):
        q = queries[start : start + block]
        if metric == "l2":
            # -|q - v|^2 = 2 q.v - |v|^2 - |q|^2; the last term does not change the ranking
            scores = torch.addmm(squared_norms.unsqueeze(0), q, vectors.T, beta=-1.0, alpha=2.0)
            v, i = top_k_stable(scores, k)
            offsets: list[float] = (q * q).sum(dim=1).tolist()
            v = [[min(x - o, 0.0) for x in row] for row, o in zip(v, offsets, strict=True)]
        else:
            v, i = top_k_stable(torch.mm(q, vectors.T), k)
        values.extend(v)
        indices.extend(i)
    return values, indices
