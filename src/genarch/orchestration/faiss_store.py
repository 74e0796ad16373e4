"""A vector store backed by faiss (``pip install 'genarch[faiss]'``).

:class:`FaissVectorStore` keeps its vectors in a faiss flat index (exact search,
faiss's own BLAS kernels) and everything else — tenants, ids, metadata filters,
validation, crash-safe persistence — exactly as
:class:`~genarch.orchestration.vectorstore.ExactVectorStore` does, so the two
are interchangeable: same results (up to float rounding), same files on disk.
faiss is imported only when a store is made.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from genarch.errors import missing_dependency
from genarch.orchestration.vectorstore import (
    Metric,
    StoreHandle,
    VectorBackend,
    VectorStoreConfig,
)

__all__ = ["FaissVectorStore"]


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise missing_dependency("faiss", "faiss", "FaissVectorStore") from None
    return faiss


class FaissVectors:
    """Vectors in a faiss ``IndexFlatIP`` / ``IndexFlatL2``, row ``i`` = faiss id ``i``."""

    def __init__(self, dim: int, metric: Metric) -> None:
        self.faiss = _faiss()
        self.metric = metric
        self.index = self.faiss.IndexFlatL2(dim) if metric == "l2" else self.faiss.IndexFlatIP(dim)

    def _view(self) -> np.ndarray:
        """A writable numpy view of the index's stored vectors, ``(ntotal, dim)``."""
        n, d = self.index.ntotal, self.index.d
        if n == 0:
            return np.empty((0, d), dtype=np.float32)
        return self.faiss.rev_swig_ptr(self.index.get_xb(), n * d).reshape(n, d)  # type: ignore[no-any-return]

    def write(self, rows: torch.Tensor, vectors: torch.Tensor, size: int) -> None:
        n = self.index.ntotal
        array = vectors.numpy()
        row_list = rows.numpy()
        old = row_list < n
        if old.any():
            self._view()[row_list[old]] = array[old]  # replace in place: rows keep their order
        new = ~old
        if new.any():
            order = np.argsort(row_list[new])  # new rows are n, n+1, ... in some order
            self.index.add(np.ascontiguousarray(array[new][order]))
        assert self.index.ntotal == size, (self.index.ntotal, size)

    def compact(self, keep: torch.Tensor) -> None:
        dropped = (~keep).nonzero().flatten().numpy().astype(np.int64)
        self.index.remove_ids(self.faiss.IDSelectorBatch(dropped))  # keeps the others' order

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._view()[rows.numpy()].copy())

    def top_k(
        self, queries: torch.Tensor, rows: torch.Tensor | None, k: int
    ) -> tuple[list[list[float]], list[list[int]]]:
        n = self.index.ntotal
        params = None
        if rows is not None:
            mask = np.zeros(n, dtype=bool)
            mask[rows.numpy()] = True
            bitmap = np.packbits(mask, bitorder="little")
            selector = self.faiss.IDSelectorBitmap(n, self.faiss.swig_ptr(bitmap))
            params = self.faiss.SearchParameters(sel=selector)
        grab = min(k, n if rows is None else int(rows.numel()))
        distances, labels = self.index.search(queries.numpy(), grab, params=params)
        scores: list[list[float]] = (-distances if self.metric == "l2" else distances).tolist()
        # faiss orders equal scores its own way: order them by row, as the exact store does.
        # Label -1 is faiss's "no result" (e.g. a NaN score): it is no row, never row -1.
        values, indices = [], []
        for row_scores, row_labels in zip(scores, labels.tolist(), strict=True):
            found = [(s, i) for s, i in zip(row_scores, row_labels, strict=True) if i >= 0]
            pairs = sorted(found, key=lambda p: (-p[0], p[1]))
            values.append([p[0] for p in pairs])
            indices.append([p[1] for p in pairs])
        return values, indices


class FaissVectorStore(StoreHandle):
    """The vector store with a faiss flat index holding the vectors.

    Same constructor, tenants, filters, errors and files as
    :class:`~genarch.orchestration.vectorstore.ExactVectorStore`; a store saved
    by either loads into the other. Filters become a faiss ``IDSelectorBitmap``,
    so they apply before ranking.

    Raises:
        MissingDependencyError: faiss is not installed (``pip install 'genarch[faiss]'``).

    Examples:
        >>> import torch
        >>> store = FaissVectorStore(dim=2, metric="inner_product")  # doctest: +SKIP
        >>> store.upsert(["a", "b"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # doctest: +SKIP
        >>> [h.id for h in store.search(torch.tensor([[0.2, 0.9]]), k=1)[0]]  # doctest: +SKIP
        ['b']
    """

    _backend_name: ClassVar[str] = "faiss"

    def _make_backend(self, config: VectorStoreConfig) -> VectorBackend:
        return FaissVectors(config.dim, config.metric)
