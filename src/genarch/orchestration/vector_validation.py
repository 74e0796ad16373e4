"""What a vector store accepts: its settings, and the checks on everything it is given.

:class:`VectorStoreConfig` (the dimension and the :data:`Metric`) and the
validators every store and retriever shares — ids, vectors, ``k``, tenants and
flat metadata — each raising :class:`~genarch.errors.InvalidInputError` with
the caller's name. Values that passed these checks are trusted on the way
out: :func:`trusted_record` builds result records without validating them
again.

**Scores stay finite.** Scores are computed in float32, where a finite vector
can still overflow (``3e38 * 3e38 = inf``; faiss then ranks nothing and returns
the label ``-1``). So :func:`scale_vectors` bounds vectors per metric before
they are stored or searched with:

* ``"cosine"``: any finite non-zero vector is accepted; it is normalised in
  float64 (where no float32 value can overflow), so huge and tiny vectors keep
  their direction instead of becoming zero.
* ``"inner_product"`` and ``"l2"``: the norm must be at most
  :data:`MAX_VECTOR_NORM` (``sqrt(float32 max / 8)``, about ``6.5e18``). Then
  every inner product is at most ``float32 max / 8`` in magnitude and every
  squared distance at most ``float32 max / 2``, so no score, nor any
  intermediate of the ``2 q.v - |v|^2`` form, overflows. Larger vectors are
  refused rather than rescaled, since rescaling would change their scores.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import torch
from pydantic import Field

from genarch.errors import InvalidInputError
from genarch.schemas import Config, Metadata, MetadataValue, Record
from genarch.validation import describe

__all__ = [
    "Metric",
    "VectorStoreConfig",
    "check_ids",
    "check_k",
    "check_metadata",
    "check_metadata_mapping",
    "check_tenant",
    "check_vectors",
    "scale_vectors",
    "stored_vectors_problem",
    "trusted_record",
]

RecordT = TypeVar("RecordT", bound=Record)

Metric = Literal["cosine", "inner_product", "l2"]
"""How similarity is measured; every score is "higher is better"."""

MAX_SQUARED_NORM = float(np.finfo(np.float32).max) / 8
"""The largest squared norm of a vector under ``"inner_product"`` and ``"l2"`` (see the module)."""
MAX_VECTOR_NORM = math.sqrt(MAX_SQUARED_NORM)
"""The largest norm of a vector under ``"inner_product"`` and ``"l2"``, about ``6.5e18``."""

_SCALARS = (str, int, float, bool, type(None))
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
            :meth:`~genarch.orchestration.vectorstore.ExactVectorStore.get_vectors`
            returns unit vectors),
            ``"inner_product"`` or ``"l2"`` (score = minus the squared distance).
    """

    dim: Annotated[int, Field(ge=1)]
    metric: Metric = "cosine"


# ------------------------------------------------------------------ validation


def check_tenant(tenant: object, where: str) -> str:
    """A non-empty tenant name."""
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


def scale_vectors(
    vectors: torch.Tensor, metric: Metric, where: str, *, allow_zero: bool = False
) -> torch.Tensor:
    """Vectors from :func:`check_vectors`, made safe to score under ``metric``.

    Under ``"cosine"`` each row is unit-normalised in float64 (a zero row stays
    zero only when ``allow_zero``, as a query may); under ``"inner_product"``
    and ``"l2"`` each row's norm must be at most :data:`MAX_VECTOR_NORM`, so
    that no score overflows float32 (see the module docstring).

    Raises:
        InvalidInputError: a zero vector under ``"cosine"`` (unless
            ``allow_zero``), or a norm above :data:`MAX_VECTOR_NORM` under the
            other metrics; the message names the row.
    """
    if vectors.shape[0] == 0:
        return vectors
    wide = vectors.to(torch.float64)
    squared = (wide * wide).sum(dim=1)  # at most dim * 1.2e77: finite in float64
    if metric == "cosine":
        zero = squared == 0
        if not allow_zero and bool(zero.any()):
            bad = int(zero.nonzero()[0, 0])
            raise InvalidInputError(f"{where}: row {bad} is a zero vector, which has no cosine")
        norms = torch.where(zero, 1.0, squared.sqrt()).unsqueeze(1)
        return (wide / norms).to(torch.float32).contiguous()
    too_long = squared > MAX_SQUARED_NORM
    if bool(too_long.any()):
        bad = int(too_long.nonzero()[0, 0])
        raise InvalidInputError(
            f"{where}: row {bad} has norm {math.sqrt(float(squared[bad])):.3g}; under metric "
            f"{metric!r} a vector's norm must be at most {MAX_VECTOR_NORM:.3g} so that its "
            "scores stay finite in float32 (scale the vectors down, or use metric='cosine')"
        )
    return vectors


def stored_vectors_problem(vectors: torch.Tensor, metric: Metric) -> str | None:
    """Why vectors read from a saved store could not have been stored, or ``None``.

    Stored vectors are finite; under ``"inner_product"`` and ``"l2"`` their
    norms are at most :data:`MAX_VECTOR_NORM`, under ``"cosine"`` at most 1
    (unit vectors, or zero rows that older versions stored when a norm overflowed).
    """
    if vectors.shape[0] == 0:
        return None
    array = vectors.numpy()
    finite = np.isfinite(array)
    if not finite.all():
        return f"row {int(np.flatnonzero(~finite.all(axis=1))[0])} holds NaN or inf"
    squared = (array.astype(np.float64) ** 2).sum(axis=1)
    limit = 1.0 + 1e-4 if metric == "cosine" else MAX_SQUARED_NORM
    if (squared > limit).any():
        bad = int(np.flatnonzero(squared > limit)[0])
        return (
            f"row {bad} has norm {math.sqrt(float(squared[bad])):.3g}, over the limit of {metric!r}"
        )
    return None


def check_k(k: object, where: str) -> int:
    """A positive int ``k``."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidInputError(f"{where} expected k to be a positive int, got {describe(k)}")
    return k


def _check_metadata_value(value: object, where: str) -> MetadataValue:
    if not isinstance(value, _SCALARS):
        raise InvalidInputError(
            f"{where}: metadata values must be str, int, float, bool or None, got {describe(value)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"{where}: metadata values must be finite, got {value}")
    return value


def check_metadata_mapping(mapping: object, where: str) -> Metadata:
    """One flat metadata mapping: non-empty str keys, finite scalar values."""
    if not isinstance(mapping, Mapping):
        raise InvalidInputError(f"{where} expected a mapping, got {describe(mapping)}")
    out: Metadata = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"{where}: metadata keys must be non-empty str, got {key!r}")
        out[key] = _check_metadata_value(value, f"{where}[{key!r}]")
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
    return [check_metadata_mapping(m, f"{where} metadata[{i}]") for i, m in enumerate(metadata)]
