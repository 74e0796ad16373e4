"""Near-duplicate detection over Ray Data, with the single-process answer.

:func:`distributed_near_dedup` finds the same duplicates, kept documents and
clusters as :meth:`NearDeduplicator.find_duplicates
<genarch.data.dedup.NearDeduplicator.find_duplicates>` on the same documents
in the same order, without holding the corpus, the band buckets or the
candidate pairs on one machine. The stages (functions in
``genarch/distributed/_dedup_stages.py``):

1. **Signatures** (``map_batches``): each document normalised and hashed by
   the deduplicator's own :class:`~genarch.data.minhash.MinHasher`, so the
   signatures are bit-identical; plus a digest of the normalised text.
2. **Band shuffle** (``groupby(["band", "key"])``): one row per document and
   LSH band; each bucket emits candidate pairs between the *representatives*
   (earliest member) of its distinct texts, and one ``same_text`` edge per
   later copy of a text.
3. **Verification** (two joins on position fetch both signatures, then
   ``map_batches``): a pair is an edge when its signature Jaccard estimate
   reaches the threshold, the rule the local deduplicator applies.
4. **Connected components** (large-star / small-star, one ``groupby`` on the
   node per step, repeated until every node is settled in a star): each node
   gets its component's smallest position.
5. **Replay** (``groupby("component")``): the local deduplicator's sequential
   rule run on each component alone. A document's decision depends only on
   kept documents it shares a verified edge with, which all lie in its
   component, so this gives exactly the local answer.

Only counts come back to the driver; matches and kept documents stay
Ray Data datasets. Order: documents are identified by a
``position`` column (the input order that "first occurrence" refers to);
datasets come back in no particular row order.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from genarch.data.dedup import (
    DuplicateMatch,
    DuplicateReport,
    NearDeduplicator,
    NearDeduplicatorConfig,
)
from genarch.distributed import _dedup_stages as stages
from genarch.distributed._cluster import check_address, connect_ray, genarch_cause
from genarch.errors import ConfigError, GenarchError, InvalidInputError
from genarch.schemas import Document, Record
from genarch.validation import checked_items, describe

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["DistributedDedupStats", "DistributedDuplicates", "distributed_near_dedup"]

logger = logging.getLogger(__name__)

_REQUIRED_COLUMNS = ("id", "position", "text")
_WHERE = "distributed_near_dedup"


class DistributedDedupStats(Record):
    """Sizes of one distributed run, the figures a cost model needs.

    Attributes:
        documents: documents read.
        candidate_pairs: pairs emitted by the band buckets, counted once per
            band they share (what the verification joins read), ``same_text``
            edges included.
        verified_edges: candidate pairs at or above the threshold (with repeats
            across bands).
        component_nodes: documents with at least one verified edge.
        rounds: large-star steps until every component was a star.
        duplicates: documents found to be duplicates.
    """

    documents: int
    candidate_pairs: int
    verified_edges: int
    component_nodes: int
    rounds: int
    duplicates: int


@dataclass(frozen=True)
class DistributedDuplicates:
    """What :func:`distributed_near_dedup` found.

    Attributes:
        matches: one row per dropped document, columns ``position``,
            ``duplicate_id``, ``kept_id``, ``kind`` (``"exact"``/``"near"``),
            ``similarity`` — the fields of :class:`~genarch.data.dedup.DuplicateMatch`.
            Materialised; rows in no particular order.
        kept: the input rows (all their columns) that are not duplicates, lazy
            (an anti-join of the input with ``matches``; the input is read again
            when it is consumed).
        stats: counts of the run.
    """

    matches: Dataset
    kept: Dataset
    stats: DistributedDedupStats

    def report(self) -> DuplicateReport:
        """Collect :attr:`matches` on the driver as the local deduplicator's report.

        Equal to ``NearDeduplicator(config).find_duplicates(documents)`` on the
        same documents in position order. Holds every match in memory: for
        corpora whose matches do not fit, consume :attr:`matches` instead.
        """
        rows = sorted(self.matches.iter_rows(), key=lambda row: int(row["position"]))
        matches = tuple(
            DuplicateMatch(
                duplicate_id=row["duplicate_id"],
                kept_id=row["kept_id"],
                kind=row["kind"],
                similarity=float(row["similarity"]),
                position=int(row["position"]),
            )
            for row in rows
        )
        documents = self.stats.documents
        return DuplicateReport(documents=documents, kept=documents - len(matches), matches=matches)


def _deduplicator(value: object) -> NearDeduplicator:
    if value is None:
        return NearDeduplicator()
    if isinstance(value, NearDeduplicator):
        return value
    if isinstance(value, NearDeduplicatorConfig | Mapping):
        return NearDeduplicator(value)
    raise ConfigError(
        "distributed_near_dedup expected deduplicator to be a NearDeduplicator, a "
        f"NearDeduplicatorConfig, a mapping of its fields or None, got {describe(value)}"
    )


def _as_dataset(ray: Any, documents: object) -> Dataset:
    if isinstance(documents, ray.data.Dataset):
        names = set(documents.schema().names)
        missing = [c for c in _REQUIRED_COLUMNS if c not in names]
        if missing:
            raise InvalidInputError(
                "distributed_near_dedup expected a Dataset with columns 'id' (str), 'text' "
                "(str) and 'position' (int, the input order that 'first occurrence' refers "
                f"to); it lacks {missing}, has {sorted(names)}"
            )
        return cast("Dataset", documents)
    rows: list[dict[str, Any]] = [
        {"position": position, "id": document.id, "text": document.text}
        for position, document in enumerate(
            checked_items(documents, Document, where="distributed_near_dedup")
        )
    ]
    if not rows:  # from_items([]) has no columns to check or join on
        import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]

        schema = {"position": pa.int64(), "id": pa.string(), "text": pa.string()}
        empty = pa.table({name: pa.array([], kind) for name, kind in schema.items()})
        return cast("Dataset", ray.data.from_arrow(empty))
    return cast("Dataset", ray.data.from_items(rows))


def _nothing_found(
    ray: Any, dataset: Dataset, documents: int, candidate_pairs: int
) -> DistributedDuplicates:
    import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]

    empty = pa.table(
        {
            "position": pa.array([], pa.int64()),
            "duplicate_id": pa.array([], pa.string()),
            "kept_id": pa.array([], pa.string()),
            "kind": pa.array([], pa.string()),
            "similarity": pa.array([], pa.float64()),
        }
    )
    stats = DistributedDedupStats(
        documents=documents,
        candidate_pairs=candidate_pairs,
        verified_edges=0,
        component_nodes=0,
        rounds=0,
        duplicates=0,
    )
    return DistributedDuplicates(matches=ray.data.from_arrow(empty), kept=dataset, stats=stats)


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"distributed_near_dedup expected {name} to be a positive int, got {describe(value)}"
        )
    return value


def distributed_near_dedup(
    documents: Dataset | Iterable[Document],
    deduplicator: NearDeduplicator | NearDeduplicatorConfig | Mapping[str, Any] | None = None,
    *,
    num_partitions: int | None = None,
    batch_size: int = 1024,
    max_rounds: int = 64,
    address: str | None = None,
) -> DistributedDuplicates:
    """Find near-duplicates on the running Ray cluster, as the single-process deduplicator would.

    Args:
        documents: a :class:`ray.data.Dataset` with columns ``id`` (str),
            ``text`` (str) and ``position`` (unique non-negative ints: the order
            in which "first occurrence" is decided), or an iterable of
            :class:`~genarch.schemas.Document` (positions are its order; it is
            read into the driver, so this form is for small corpora and tests).
        deduplicator: the settings — a :class:`NearDeduplicator`, its config,
            a mapping of config fields, or ``None`` for the defaults.
        num_partitions: partitions of each shuffle; default twice the
            cluster's CPUs.
        batch_size: documents hashed per ``map_batches`` call.
        max_rounds: large-star steps allowed before giving up (the number
            needed grows with the logarithm of the largest component's size).
        address: the Ray cluster to join when this process has not joined one
            (``"auto"``, ``"ray://head:10001"``); ``None`` uses the Ray this
            process already started (``ray.init(...)``).

    Returns:
        :class:`DistributedDuplicates`; its ``report()`` equals
        ``deduplicator.find_duplicates(documents)`` on the same ordered documents.

    Raises:
        MissingDependencyError: ``ray`` is not installed (``pip install 'genarch[ray]'``).
        ConfigError: a setting is not of the expected kind, or no Ray is running
            and no ``address`` was given.
        InvalidInputError: the documents are not documents (the Dataset lacks a
            column, or a row holds a non-string id or text).
        GenarchError: components did not settle within ``max_rounds``.

    Example:
        >>> from genarch import Document
        >>> from genarch.distributed.dedup import distributed_near_dedup
        >>> docs = [Document(id="a", text="the quick brown fox jumps over the lazy dog"),
        ...         Document(id="b", text="The quick brown fox jumps over the lazy dog!")]
        >>> found = distributed_near_dedup(docs, {"threshold": 0.8})  # doctest: +SKIP
        >>> [(m.duplicate_id, m.kept_id, m.kind) for m in found.report().matches]  # doctest: +SKIP
        [('b', 'a', 'exact')]
    """
    dedup = _deduplicator(deduplicator)
    batch_size = _positive(batch_size, "batch_size")
    max_rounds = _positive(max_rounds, "max_rounds")
    if num_partitions is not None:
        _positive(num_partitions, "num_partitions")
    ray = connect_ray(check_address(address, _WHERE), _WHERE)
    if num_partitions is None:
        num_partitions = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    partitions = _positive(num_partitions, "num_partitions")
    dataset = _as_dataset(ray, documents)
    try:
        return _run(ray, dataset, dedup, partitions, batch_size, max_rounds)
    except Exception as error:  # a worker's GenarchError arrives wrapped by Ray
        cause = genarch_cause(error)
        if cause is error:
            raise
        raise cause from error


def _run(
    ray: Any,
    dataset: Dataset,
    dedup: NearDeduplicator,
    partitions: int,
    batch_size: int,
    max_rounds: int,
) -> DistributedDuplicates:
    from ray.data.expressions import col

    config = dedup.config

    # 1. signatures
    signatures = dataset.map_batches(
        functools.partial(stages.signature_batch, dedup=dedup),
        batch_format="numpy",
        batch_size=batch_size,
    ).materialize()
    total = signatures.count()
    if total == 0:
        return _nothing_found(ray, dataset, total, 0)
    slim = signatures.select_columns(["position", "signature", "id", "empty"])

    # 2. band shuffle -> candidate pairs
    pairs = (
        signatures.map_batches(
            functools.partial(stages.band_rows, dedup=dedup), batch_format="numpy"
        )
        .groupby(["band", "key"], num_partitions=partitions)
        .map_groups(stages.bucket_pairs, batch_format="numpy")
        .materialize()
    )

    # 3. verification: fetch both signatures, keep pairs at or above the threshold
    edges = (
        pairs.join(slim, "inner", partitions, on=("a",), right_on=("position",))
        .join(
            slim,
            "inner",
            partitions,
            on=("b",),
            right_on=("position",),
            left_suffix="_a",
            right_suffix="_b",
        )
        .map_batches(
            functools.partial(
                stages.verified_edges, num_perm=config.num_perm, threshold=config.threshold
            ),
            batch_format="numpy",
        )
        .materialize()
    )

    if edges.count() == 0:  # no two documents alike: nothing to cluster
        return _nothing_found(ray, dataset, total, pairs.count())

    # 4. connected components: large-star / small-star until all nodes are settled
    graph = edges.select_columns(["a", "b"])
    rounds = 0
    while True:
        rounds += 1
        star = (
            graph.map_batches(stages.both_directions, batch_format="numpy")
            .groupby("node", num_partitions=partitions)
            .map_groups(stages.large_star, batch_format="numpy")
            .materialize()
        )
        unsettled = star.filter(expr=col("kind") == stages.UNSETTLED).count()
        logger.info("large-star step %d: %d unsettled nodes", rounds, unsettled)
        if unsettled == 0:
            break
        if rounds >= max_rounds:
            raise GenarchError(
                f"distributed_near_dedup: components did not settle in max_rounds={max_rounds} "
                f"large-star steps ({unsettled} nodes unsettled); raise max_rounds"
            )
        graph = (
            star.filter(expr=col("kind") == stages.EDGE)
            .groupby("node", num_partitions=partitions)
            .map_groups(stages.small_star, batch_format="numpy")
            .materialize()
        )
    labels = (
        star.filter(expr=col("kind") != stages.UNSETTLED)
        .map_batches(
            lambda batch: {"node": batch["node"], "component": batch["parent"]},
            batch_format="numpy",
        )
        .materialize()
    )

    # 5. replay the sequential rule per component
    matches = (
        edges.join(labels, "inner", partitions, on=("a",), right_on=("node",))
        .groupby("component", num_partitions=partitions)
        .map_groups(
            functools.partial(stages.replay_component, exact_first=config.exact_first),
            batch_format="numpy",
        )
        .materialize()
    )
    kept = dataset.join(
        matches.select_columns(["position"]), "left_anti", partitions, on=("position",)
    )
    stats = DistributedDedupStats(
        documents=total,
        candidate_pairs=pairs.count(),
        verified_edges=edges.count(),
        component_nodes=labels.count(),
        rounds=rounds,
        duplicates=matches.count(),
    )
    logger.info("distributed_near_dedup: %s", stats)
    return DistributedDuplicates(matches=matches, kept=kept, stats=stats)
