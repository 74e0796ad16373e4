"""The per-batch and per-group functions of :func:`~genarch.distributed.distributed_near_dedup`.

Plain numpy, no Ray: each function takes one batch (a dict of column arrays,
Ray Data's ``batch_format="numpy"``) and returns one. The order of the stages
and why each gives the same answer as the single-process
:class:`~genarch.data.dedup.NearDeduplicator` is told in
:mod:`genarch.distributed.dedup`.

Node ids are the documents' positions in the input order (``int64``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from genarch.data.dedup import NearDeduplicator, _digest, normalize_for_matching
from genarch.data.minhash import LshIndex
from genarch.errors import InvalidInputError
from genarch.validation import describe

Batch = dict[str, npt.NDArray[Any]]

# kinds of rows that large_star emits
EDGE, SELF, UNSETTLED = 0, 1, 2


def _column(batch: Batch, name: str, where: str) -> npt.NDArray[Any]:
    if name not in batch:
        raise InvalidInputError(
            f"{where} expected a column {name!r}; the batch has {sorted(batch)}"
        )
    return batch[name]


def signature_batch(batch: Batch, dedup: NearDeduplicator) -> Batch:
    """MinHash signature, text digest and emptiness of each document (``id``, ``text``, ``position``).

    Uses the single-process deduplicator's normalisation and :class:`MinHasher`,
    so the signatures are bit-identical to the ones it computes.
    """
    where = "distributed_near_dedup"
    ids, texts = _column(batch, "id", where), _column(batch, "text", where)
    positions = _column(batch, "position", where)
    if positions.dtype.kind not in "iu" or (len(positions) and positions.min() < 0):
        raise InvalidInputError(
            f"{where} expected the column 'position' to hold non-negative ints, "
            f"got dtype {positions.dtype}"
        )
    for row, (doc_id, text) in enumerate(zip(ids, texts, strict=True)):
        if not isinstance(doc_id, str) or not isinstance(text, str):
            raise InvalidInputError(
                f"{where} expected 'id' and 'text' to be str, but the row at position "
                f"{int(positions[row])} has id {describe(doc_id)} and text {describe(text)}"
            )
    config = dedup.config
    normal = [
        normalize_for_matching(t, ignore_punctuation=config.ignore_punctuation) for t in texts
    ]
    signatures = dedup.hasher.signatures(normal)
    return {
        "position": positions.astype(np.int64),
        "id": ids,
        "signature": np.array([s.tobytes() for s in signatures], dtype=object),
        "digest": np.array([_digest(t) for t in normal], dtype=object),
        "empty": np.array([not t for t in normal], dtype=bool),
    }


def band_rows(batch: Batch, dedup: NearDeduplicator) -> Batch:
    """One row per (document, LSH band): the band, its 64-bit key, the position and the digest.

    A document whose text has no shingles (empty after normalisation) takes
    part in exact matching only, as in the single-process deduplicator: it
    gets one row in band ``-1``, keyed 0, instead.
    """
    bands = dedup.lsh.bands
    empty = batch["empty"].astype(bool)
    full = ~empty
    signatures = np.frombuffer(b"".join(batch["signature"][full]), dtype=np.uint32).reshape(
        int(full.sum()), dedup.config.num_perm
    )
    index = LshIndex(dedup.config.num_perm, dedup.lsh, dedup.config.threshold)
    keys = np.asarray(index.band_keys(signatures), dtype=np.uint64).reshape(-1, bands)
    positions, digests = batch["position"], batch["digest"]
    return {
        "band": np.concatenate([np.tile(np.arange(bands, dtype=np.int64), len(keys)),
                                np.full(int(empty.sum()), -1, dtype=np.int64)]),
        "key": np.concatenate([keys.reshape(-1).view(np.int64),
                               np.zeros(int(empty.sum()), dtype=np.int64)]),
        "position": np.concatenate([np.repeat(positions[full], bands), positions[empty]]),
        "digest": np.concatenate([np.repeat(digests[full], bands), digests[empty]]),
    }  # fmt: skip


def bucket_pairs(group: Batch) -> Batch:
    """Candidate pairs of one LSH bucket (all rows share ``band`` and ``key``).

    Documents with the same normalised text (same digest) form a *text group*
    whose earliest member, its representative, is the only one that can ever
    be kept. So pairs are made between representatives only, plus one
    ``same_text`` edge from each representative to each later member of its
    group (emitted in band 0, or -1 for empty texts, so once). A bucket of k
    copies of one text costs k - 1 edges, not k(k - 1) / 2.
    """
    positions = group["position"]
    if len(positions) < 2:
        return _pairs([], [], [])
    band = int(group["band"][0])
    order = np.argsort(positions, kind="stable")
    reps: dict[bytes, int] = {}
    firsts, seconds, same = [], [], []
    for i in order:
        position, digest = int(positions[i]), group["digest"][i]
        rep = reps.setdefault(digest, position)
        if rep != position and band <= 0:
            firsts.append(rep)
            seconds.append(position)
            same.append(True)
    representatives = sorted(reps.values())
    for i, a in enumerate(representatives):
        for b in representatives[i + 1 :]:
            firsts.append(a)
            seconds.append(b)
            same.append(False)
    return _pairs(firsts, seconds, same)


def _pairs(a: list[int], b: list[int], same: list[bool]) -> Batch:
    return {
        "a": np.asarray(a, dtype=np.int64),
        "b": np.asarray(b, dtype=np.int64),
        "same_text": np.asarray(same, dtype=bool),
    }


def verified_edges(batch: Batch, num_perm: int, threshold: float) -> Batch:
    """Keep the candidate pairs whose signature Jaccard estimate reaches ``threshold``.

    The estimate is the local deduplicator's (equal values / ``num_perm``);
    ``same_text`` edges (identical normalised text, hence identical signatures)
    are always kept.
    """
    left = np.frombuffer(b"".join(batch["signature_a"]), dtype=np.uint32).reshape(-1, num_perm)
    right = np.frombuffer(b"".join(batch["signature_b"]), dtype=np.uint32).reshape(-1, num_perm)
    similarity = np.count_nonzero(left == right, axis=1).astype(np.float64) / num_perm
    keep = batch["same_text"].astype(bool) | (similarity >= threshold)
    return {
        "a": batch["a"][keep],
        "b": batch["b"][keep],
        "similarity": similarity[keep],
        "same_text": batch["same_text"][keep].astype(bool),
        "id_a": batch["id_a"][keep],
        "id_b": batch["id_b"][keep],
        "empty_a": batch["empty_a"][keep].astype(bool),
        "empty_b": batch["empty_b"][keep].astype(bool),
    }


# ------------------------------------------------------ connected components
# Large-star / small-star [Kiveris, Lattanzi, Mirrokni, Rastogi, Vassilvitskii,
# "Connected Components in MapReduce and Beyond", SoCC 2014]. Each step is one
# shuffle grouped by node; the graph converges to one star per component whose
# centre is the component's smallest node.


def both_directions(batch: Batch) -> Batch:
    """Each edge (a, b) as (node=a, other=b) and (node=b, other=a)."""
    return {
        "node": np.concatenate([batch["a"], batch["b"]]),
        "other": np.concatenate([batch["b"], batch["a"]]),
    }


def large_star(group: Batch) -> Batch:
    """Connect every larger neighbour of a node to its smallest neighbour (or itself).

    Also reports whether the node was already *settled* in a star forest: a
    centre (no smaller neighbour) or a leaf (its only neighbour is smaller).
    An unsettled node emits an ``UNSETTLED`` marker row; a centre emits a
    ``SELF`` row, so that once every node is settled the output is the
    labelling (node → its component's smallest node).
    """
    node = int(group["node"][0])
    others = np.unique(group["other"])
    smaller = others[others < node]
    larger = others[others > node]
    least = int(smaller[0]) if len(smaller) else node
    nodes = list(larger.tolist())
    parents = [least] * len(nodes)
    kinds = [EDGE] * len(nodes)
    if not len(smaller):
        nodes.append(node)
        parents.append(node)
        kinds.append(SELF)
    if (len(smaller) and len(larger)) or len(smaller) > 1:
        nodes.append(node)
        parents.append(node)
        kinds.append(UNSETTLED)
    return {
        "node": np.asarray(nodes, dtype=np.int64),
        "parent": np.asarray(parents, dtype=np.int64),
        "kind": np.asarray(kinds, dtype=np.int8),
    }


def small_star(group: Batch) -> Batch:
    """Connect a node and its smaller neighbours to the smallest of them.

    Input rows are edges (node, parent) with ``parent < node``, grouped by node.
    """
    node = int(group["node"][0])
    smaller = np.unique(group["parent"])
    least = int(smaller[0])
    members = [int(v) for v in smaller[1:]] + [node]
    return {
        "a": np.asarray(members, dtype=np.int64),
        "b": np.full(len(members), least, dtype=np.int64),
    }


# ------------------------------------------------------------------ replay


def replay_component(group: Batch, exact_first: bool) -> Batch:
    """The single-process deduplicator's decisions for one connected component.

    ``group`` holds the component's verified edges. Documents are visited in
    input order; each is an exact duplicate of its text group's representative
    if that was kept (with ``exact_first``, or for empty texts), else a near
    duplicate of its most similar kept neighbour at or above the threshold
    (ties: the earliest), else kept. A document's decision depends only on
    kept documents it shares a verified edge with, all in its component, so
    replaying each component alone gives the single-process answer.
    """
    ids: dict[int, str] = {}
    empty: dict[int, bool] = {}
    representative: dict[int, int] = {}
    neighbours: dict[int, dict[int, float]] = {}
    for a, b, similarity, same, id_a, id_b, empty_a, empty_b in zip(
        group["a"].tolist(),
        group["b"].tolist(),
        group["similarity"].tolist(),
        group["same_text"].tolist(),
        group["id_a"],
        group["id_b"],
        group["empty_a"].tolist(),
        group["empty_b"].tolist(),
        strict=True,
    ):
        for position, doc_id in ((a, id_a), (b, id_b)):
            if ids.setdefault(position, doc_id) != doc_id:
                raise InvalidInputError(
                    f"distributed_near_dedup expected unique positions, but position {position} "
                    f"holds documents {ids[position]!r} and {doc_id!r}"
                )
        empty[a], empty[b] = empty_a, empty_b
        if same:
            representative[b] = a
        else:
            neighbours.setdefault(a, {})[b] = similarity
            neighbours.setdefault(b, {})[a] = similarity
    kept: set[int] = set()
    positions, duplicates, keeps, kinds, similarities = [], [], [], [], []
    for d in sorted(ids):
        rep = representative.get(d, d)
        if rep != d and rep in kept and (exact_first or empty[d]):
            found: tuple[int, float, str] | None = (rep, 1.0, "exact")
        elif empty[d]:
            found = None
        else:
            candidates = {k: s for k, s in neighbours.get(rep, {}).items() if k in kept}
            if rep != d and rep in kept:
                candidates[rep] = 1.0
            best = min(candidates.items(), key=lambda kv: (-kv[1], kv[0]), default=None)
            found = (best[0], best[1], "near") if best is not None else None
        if found is None:
            kept.add(d)
            continue
        positions.append(d)
        duplicates.append(ids[d])
        keeps.append(ids[found[0]])
        similarities.append(found[1])
        kinds.append(found[2])
    return {
        "position": np.asarray(positions, dtype=np.int64),
        "duplicate_id": np.asarray(duplicates, dtype=object),
        "kept_id": np.asarray(keeps, dtype=object),
        "kind": np.asarray(kinds, dtype=object),
        "similarity": np.asarray(similarities, dtype=np.float64),
    }
