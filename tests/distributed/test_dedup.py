"""distributed_near_dedup: the single-process NearDeduplicator's answer, computed over Ray Data."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genarch import Document
from genarch.data.dedup import NearDeduplicator, normalize_for_matching
from genarch.distributed import _dedup_stages as stages
from genarch.errors import ConfigError, InvalidInputError
from genarch.testing import edit_words

THRESHOLD = 0.8


def python_docs_with_duplicates() -> list[Document]:
    """Python-docs paragraphs plus planted exact, near and chained copies, and empty texts."""
    from pydoc_data.topics import topics

    base = []
    for name, text in sorted(topics.items()):
        for index, paragraph in enumerate(re.split(r"\n\s*\n", text)):
            flat = " ".join(paragraph.split())
            if len(flat) >= 200:
                base.append(Document(id=f"{name}/{index}", text=flat))
    rng = random.Random(7)
    base = rng.sample(base, 80)
    words = [w for d in base for w in d.text.split(" ")]
    planted = []
    for j, original in enumerate(base[:30]):  # near copies at several edit rates
        rate = rng.choice([0.0, 0.02, 0.05, 0.1, 0.2])
        planted.append(Document(id=f"near{j}", text=edit_words(original.text, rate, rng, words)))
    for j, original in enumerate(base[30:40]):  # exact copies after normalisation
        planted.append(Document(id=f"exact{j}", text=original.text.upper() + " !"))
    for j, original in enumerate(base[40:50]):  # chains: each link edits the previous one
        text = original.text
        for link in range(4):
            text = edit_words(text, 0.04, rng, words)
            planted.append(Document(id=f"chain{j}.{link}", text=text))
    planted += [Document(id="empty0", text=""), Document(id="empty1", text=" ... ")]
    documents = base + planted
    rng.shuffle(documents)
    return documents


@pytest.fixture(scope="module")
def corpus() -> list[Document]:
    return python_docs_with_duplicates()


@pytest.fixture(scope="module")
def crash_marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dedup") / "crashed"


@pytest.fixture(scope="module")
def found(local_ray: Any, corpus: list[Document], crash_marker: Path) -> Any:
    """One distributed run (Ray runs are slow to set up), during which a worker dies.

    The input dataset's first batch kills the worker process that runs it (the
    task that also computes the signatures: Ray fuses the two stages); Ray runs
    the task again on a new worker.
    """
    from genarch.distributed.dedup import distributed_near_dedup

    def crash_once(batch: dict[str, Any]) -> dict[str, Any]:
        if not crash_marker.exists():  # the first attempt kills its worker process
            crash_marker.touch()
            os._exit(1)
        return batch

    rows = [{"position": i, "id": d.id, "text": d.text} for i, d in enumerate(corpus)]
    dataset = local_ray.data.from_items(rows).map_batches(
        crash_once, batch_format="numpy", batch_size=64
    )
    return distributed_near_dedup(dataset, {"threshold": THRESHOLD}, num_partitions=2)


def test_report_equals_the_single_process_report(corpus: list[Document], found: Any) -> None:
    local = NearDeduplicator(threshold=THRESHOLD).find_duplicates(corpus)
    assert found.report() == local
    assert found.report().clusters() == local.clusters()


def test_kept_dataset_holds_the_documents_the_local_dedup_keeps(
    corpus: list[Document], found: Any
) -> None:
    local = [d.id for d in NearDeduplicator(threshold=THRESHOLD).process(corpus)]
    assert sorted(row["id"] for row in found.kept.iter_rows()) == sorted(local)


def test_stats_count_documents_and_duplicates(corpus: list[Document], found: Any) -> None:
    local = NearDeduplicator(threshold=THRESHOLD).find_duplicates(corpus)
    assert found.stats.documents == len(corpus)
    assert found.stats.duplicates == local.dropped
    assert found.stats.verified_edges <= found.stats.candidate_pairs


def test_corpus_has_components_with_several_kept_documents(corpus: list[Document]) -> None:
    """Guard: plain connected components would merge these; only the replay keeps them apart."""
    dedup = NearDeduplicator(threshold=THRESHOLD)
    report = dedup.find_duplicates(corpus)
    assert report.count("exact") >= 10
    assert report.count("near") >= 10
    texts = [normalize_for_matching(d.text, ignore_punctuation=True) for d in corpus]
    signatures = dedup.hasher.signatures(texts)
    kept_id = {m.duplicate_id: m.kept_id for m in report.matches}
    index = {d.id: i for i, d in enumerate(corpus)}
    bridges = 0  # a dropped document as similar to a second kept document as the threshold
    for duplicate, kept in kept_id.items():
        for other in corpus:
            if other.id in kept_id or other.id == kept or not texts[index[other.id]]:
                continue
            similar = np.mean(signatures[index[duplicate]] == signatures[index[other.id]])
            bridges += bool(similar >= THRESHOLD)
    assert bridges >= 1


def test_worker_killed_mid_job_is_retried_with_the_same_result(
    corpus: list[Document], found: Any, crash_marker: Path
) -> None:
    assert crash_marker.exists()  # the worker really died during the run
    assert found.report() == NearDeduplicator(threshold=THRESHOLD).find_duplicates(corpus)


def test_documents_with_nothing_alike_are_all_kept(local_ray: Any) -> None:
    from genarch.distributed.dedup import distributed_near_dedup

    docs = [
        Document(id="a", text="MinHash estimates the Jaccard similarity of two shingle sets."),
        Document(id="b", text="Ray Data shuffles rows between workers by hashing their keys."),
    ]
    found = distributed_near_dedup(docs, num_partitions=2)
    assert found.report() == NearDeduplicator().find_duplicates(docs)
    assert found.stats.duplicates == 0
    assert sorted(row["id"] for row in found.kept.iter_rows()) == ["a", "b"]


def test_an_empty_corpus_finds_nothing(local_ray: Any) -> None:
    from genarch.distributed.dedup import distributed_near_dedup

    found = distributed_near_dedup([], num_partitions=2)
    assert found.report() == NearDeduplicator().find_duplicates([])
    assert found.kept.count() == 0


def test_dataset_without_position_column_is_rejected(local_ray: Any) -> None:
    from genarch.distributed.dedup import distributed_near_dedup

    dataset = local_ray.data.from_items([{"id": "a", "text": "x"}])
    with pytest.raises(InvalidInputError, match="'position'.*lacks \\['position'\\]"):
        distributed_near_dedup(dataset)


def test_items_that_are_not_documents_are_rejected(local_ray: Any) -> None:
    from genarch.distributed.dedup import distributed_near_dedup

    with pytest.raises(InvalidInputError, match="item 1 is str"):
        distributed_near_dedup([Document(id="a", text="x"), "plain text"])  # type: ignore[list-item]


def test_deduplicator_of_the_wrong_kind_is_rejected(local_ray: Any) -> None:
    from genarch.distributed.dedup import distributed_near_dedup

    with pytest.raises(ConfigError, match="deduplicator.*got float"):
        distributed_near_dedup([Document(id="a", text="x")], 0.8)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="num_partitions.*got int: 0"):
        distributed_near_dedup([Document(id="a", text="x")], num_partitions=0)


# ---------------------------------------------- the stages alone (no Ray)


def _grouped(rows: dict[str, np.ndarray], key: str) -> Iterator[dict[str, np.ndarray]]:
    order = np.argsort(rows[key], kind="stable")
    keys = rows[key][order]
    for value in np.unique(keys):
        pick = order[keys == value]
        yield {name: column[pick] for name, column in rows.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _star_components(a: list[int], b: list[int]) -> dict[int, int]:
    """Large-star / small-star run in one process, as the Ray job runs it."""
    graph = {"a": np.asarray(a, dtype=np.int64), "b": np.asarray(b, dtype=np.int64)}
    for _ in range(64):
        star = _concat(
            [stages.large_star(g) for g in _grouped(stages.both_directions(graph), "node")]
        )
        if not np.any(star["kind"] == stages.UNSETTLED):
            return dict(zip(star["node"].tolist(), star["parent"].tolist(), strict=True))
        edges = {k: v[star["kind"] == stages.EDGE] for k, v in star.items()}
        graph = _concat([stages.small_star(g) for g in _grouped(edges, "node")])
    raise AssertionError("did not settle")


def _union_find_components(a: list[int], b: list[int]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for x, y in zip(a, b, strict=True):
        rx, ry = root(x), root(y)
        parent[max(rx, ry)] = min(rx, ry)
    return {x: root(x) for x in parent}


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=60))
def test_large_and_small_star_label_each_node_with_its_components_least_node(
    pairs: list[tuple[int, int]],
) -> None:
    pairs = [(x, y) for x, y in pairs if x != y] or [(0, 1)]
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    assert _star_components(a, b) == _union_find_components(a, b)


def test_bucket_of_copies_costs_one_edge_per_copy_not_a_pair_per_two() -> None:
    copies = 50
    group = {
        "band": np.zeros(copies, dtype=np.int64),
        "key": np.zeros(copies, dtype=np.int64),
        "position": np.arange(copies, dtype=np.int64)[::-1].copy(),
        "digest": np.array([b"same"] * copies, dtype=object),
    }
    pairs = stages.bucket_pairs(group)
    assert len(pairs["a"]) == copies - 1
    assert set(pairs["a"].tolist()) == {0}
    assert pairs["same_text"].all()
    other_band = stages.bucket_pairs({**group, "band": group["band"] + 3})
    assert len(other_band["a"]) == 0  # same-text edges come from band 0 only: made once


def test_signatures_in_a_batch_equal_the_local_hashers(corpus: list[Document]) -> None:
    dedup = NearDeduplicator(threshold=THRESHOLD)
    batch = {
        "id": np.array([d.id for d in corpus[:20]], dtype=object),
        "text": np.array([d.text for d in corpus[:20]], dtype=object),
        "position": np.arange(20, dtype=np.int64),
    }
    out = stages.signature_batch(batch, dedup)
    texts = [normalize_for_matching(d.text, ignore_punctuation=True) for d in corpus[:20]]
    expected = dedup.hasher.signatures(texts)
    got = np.frombuffer(b"".join(out["signature"]), dtype=np.uint32).reshape(20, -1)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("position", [np.array([-1]), np.array([0.5])])
def test_signature_stage_rejects_positions_that_are_not_non_negative_ints(
    position: np.ndarray,
) -> None:
    batch = {"id": np.array(["a"], dtype=object), "text": np.array(["x"], dtype=object)}
    with pytest.raises(InvalidInputError, match="'position'"):
        stages.signature_batch({**batch, "position": position}, NearDeduplicator())


def _edges(rows: list[tuple[int, int, float, bool]]) -> dict[str, np.ndarray]:
    return {
        "a": np.array([r[0] for r in rows], dtype=np.int64),
        "b": np.array([r[1] for r in rows], dtype=np.int64),
        "similarity": np.array([r[2] for r in rows]),
        "same_text": np.array([r[3] for r in rows]),
        "id_a": np.array([f"d{r[0]}" for r in rows], dtype=object),
        "id_b": np.array([f"d{r[1]}" for r in rows], dtype=object),
        "empty_a": np.zeros(len(rows), dtype=bool),
        "empty_b": np.zeros(len(rows), dtype=bool),
    }


def test_replay_keeps_the_end_of_a_chain_that_is_unlike_the_kept_start() -> None:
    # d0 ~ d1 ~ d2 but d2 is not like d0: d1 is dropped for d0, so d2 meets no kept neighbour
    out = stages.replay_component(_edges([(0, 1, 0.85, False), (1, 2, 0.85, False)]), True)
    assert out["duplicate_id"].tolist() == ["d1"]
    assert out["kept_id"].tolist() == ["d0"]


def test_replay_picks_the_most_similar_kept_neighbour_then_the_earliest() -> None:
    out = stages.replay_component(
        _edges([(0, 3, 0.85, False), (1, 3, 0.9, False), (2, 3, 0.9, False)]), True
    )
    assert dict(zip(out["duplicate_id"], out["kept_id"], strict=True)) == {"d3": "d1"}


def test_replay_rejects_a_position_held_by_two_documents() -> None:
    edges = _edges([(0, 1, 0.9, False)])
    edges["id_b"] = np.array(["d0"], dtype=object)
    edges = {k: np.concatenate([v, _edges([(1, 2, 0.9, False)])[k]]) for k, v in edges.items()}
    edges["id_a"][1] = "other"
    with pytest.raises(InvalidInputError, match="unique positions"):
        stages.replay_component(edges, True)


@pytest.mark.parametrize(("exact_first", "kind"), [(True, "exact"), (False, "near")])
def test_replay_calls_a_copy_of_a_kept_text_exact_only_with_exact_first(
    exact_first: bool, kind: str
) -> None:
    out = stages.replay_component(_edges([(0, 1, 1.0, True)]), exact_first)
    assert out["kind"].tolist() == [kind]
    assert out["similarity"].tolist() == [1.0]
