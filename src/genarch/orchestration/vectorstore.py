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
  previous store loadable (see :meth:`ExactVectorStore.load` and
  :mod:`genarch.orchestration.store_files`).

Scores are "higher is better": the inner product for ``"inner_product"``, the
cosine similarity for ``"cosine"`` (vectors are unit-normalised when stored) and
the negated squared Euclidean distance for ``"l2"``. Every score is finite:
vectors whose scores could overflow float32 are refused (see
:func:`~genarch.orchestration.vector_validation.scale_vectors`), and a backend's
"no result" (faiss's label ``-1``) is never turned into an entry.

The pieces live in their own modules: the settings and input checks in
:mod:`~genarch.orchestration.vector_validation`, the ids/tenants/metadata in
:mod:`~genarch.orchestration.entry_table`, the files in
:mod:`~genarch.orchestration.store_files`; this module holds the ranking, the
torch backend and the store itself.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, Self

import torch

from genarch._deprecated import moved_module
from genarch.configured import Configured
from genarch.orchestration.entry_table import EntryTable
from genarch.orchestration.store_files import read_store, write_store
from genarch.orchestration.vector_validation import (
    Metric,
    VectorStoreConfig,
    check_ids,
    check_k,
    check_metadata,
    check_metadata_mapping,
    check_tenant,
    check_vectors,
    scale_vectors,
)
from genarch.schemas import Hit, Metadata, MetadataValue

__all__ = [
    "ExactVectorStore",
    "Metric",
    "StoreHandle",
    "TorchVectors",
    "VectorBackend",
    "VectorStoreConfig",
    "top_k_stable",
]

logger = logging.getLogger(__name__)

# Names that lived here until the module was split: they warn, then forward.
__getattr__ = moved_module(
    __name__,
    {
        "EntryTable": "genarch.orchestration.entry_table",
        "trusted_record": "genarch.orchestration.vector_validation",
        "FORMAT_VERSION": "genarch.orchestration.store_files",
    },
)

# Scores held at once per block of queries (512 MiB, e.g. 1,300 queries over
# 100,000 vectors): few, large gemm + topk calls, with bounded memory.
_SCORE_BLOCK_BYTES = 1 << 29


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


class StoreHandle(Configured[VectorStoreConfig]):
    """Tenants, validation, filters and persistence around a :class:`VectorBackend`.

    The shared half of :class:`ExactVectorStore` and
    :class:`~genarch.orchestration.faiss_store.FaissVectorStore`; subclasses
    only say which backend holds the vectors.

    Args:
        config: a :class:`VectorStoreConfig`; keyword fields are shorthand (``dim=``, ``metric=``).
        tenant: the tenant this handle reads and writes.

    Raises:
        ConfigError: invalid settings, or both a config and keyword fields.
        InvalidInputError: an empty tenant name.
    """

    _backend_name: ClassVar[str] = "exact"

    def __init__(
        self,
        config: VectorStoreConfig | Mapping[str, Any] | None = None,
        *,
        tenant: str = "default",
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        self._lock = threading.RLock()
        self._table = EntryTable()
        self._backend = self._make_backend(self._config)
        self._tenant = check_tenant(tenant, type(self).__name__)

    def _make_backend(self, config: VectorStoreConfig) -> VectorBackend:
        return TorchVectors(config.dim, config.metric)

    def for_tenant(self, tenant: str) -> Self:
        """A handle on the same storage that sees only ``tenant``'s entries."""
        handle = copy.copy(self)  # shares config, lock, table and backend
        handle._tenant = check_tenant(tenant, f"{type(self).__name__}.for_tenant")
        return handle

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
                vector under ``"cosine"``, a norm above
                :data:`~genarch.orchestration.vector_validation.MAX_VECTOR_NORM`
                under the other metrics (its scores would overflow float32), or
                metadata that is not flat scalars. Nothing is stored when any of
                it is wrong.
        """
        where = f"{type(self).__name__}.upsert"
        ids = check_ids(ids, where)
        rows = check_vectors(vectors, len(ids), self.dim, where)
        metas = check_metadata(metadata, len(ids), where)
        rows = scale_vectors(rows, self.metric, where)
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
            InvalidInputError: wrong shape or dimension, NaN/inf, a norm above
                :data:`~genarch.orchestration.vector_validation.MAX_VECTOR_NORM`
                under ``"inner_product"``/``"l2"``, ``k <= 0``, or a ``where``
                that is not a flat mapping of scalars.
        """
        name = f"{type(self).__name__}.search"
        check_k(k, name)
        q = check_vectors(queries, None, self.dim, name)
        conditions = None if where is None else check_metadata_mapping(where, f"{name} where")
        q = scale_vectors(q, self.metric, name, allow_zero=True)
        with self._lock:
            table = self._table
            if not len(table):
                return [[] for _ in range(q.shape[0])]
            rows = table.candidates(self._tenant, conditions)
            if rows is not None and rows.numel() == 0:
                return [[] for _ in range(q.shape[0])]
            values, indices = self._backend.top_k(q, rows, k)
            tenant = self._tenant
            return [table.hits(r, s, tenant) for r, s in zip(indices, values, strict=True)]

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
