"""ExactVectorStore: exact search, filters before ranking, tenants that cannot leak, crash-safe saves."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch._io import write_manifest
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.orchestration.vectorstore import ExactVectorStore, VectorStoreConfig, top_k_stable
from genarch.schemas import Hit
from genarch.testing import parametrize_with_checks, vector_store_checks

METRICS = ["cosine", "inner_product", "l2"]


def unit(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(
        torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=1
    )


def filled(n: int = 50, dim: int = 8, metric: str = "cosine", **kwargs: object) -> ExactVectorStore:
    store = ExactVectorStore(dim=dim, metric=metric, **kwargs)  # type: ignore[arg-type]
    store.upsert(
        [f"v{i}" for i in range(n)],
        unit(n, dim),
        [{"parity": i % 2, "group": f"g{i % 5}"} for i in range(n)],
    )
    return store


@parametrize_with_checks(
    [
        vector_store_checks(lambda dim, m=m: ExactVectorStore(dim=dim, metric=m), label=m)  # type: ignore[misc]
        for m in METRICS
    ]
)
def test_exact_store_passes_the_conformance_kit(check) -> None:  # type: ignore[no-untyped-def]
    check()


# ------------------------------------------------------------------- exactness


@pytest.mark.parametrize("metric", METRICS)
def test_search_equals_brute_force_ranking(metric: str) -> None:
    vectors, queries = torch.randn(300, 16), torch.randn(7, 16)
    store = ExactVectorStore(dim=16, metric=metric)  # type: ignore[arg-type]
    store.upsert([str(i) for i in range(300)], vectors)
    if metric == "cosine":
        expected = (
            torch.nn.functional.normalize(queries, dim=1)
            @ torch.nn.functional.normalize(vectors, dim=1).T
        )
    elif metric == "inner_product":
        expected = queries @ vectors.T
    else:
        expected = -(torch.cdist(queries, vectors) ** 2)
    top = expected.topk(10, dim=1)
    for row, hits in enumerate(store.search(queries, k=10)):
        assert [h.id for h in hits] == [str(i) for i in top.indices[row].tolist()]
        assert [h.score for h in hits] == pytest.approx(top.values[row].tolist(), abs=1e-4)


def test_batched_search_equals_one_query_at_a_time() -> None:
    store = filled(200, 16)
    queries = unit(40, 16, seed=1)
    batched = store.search(queries, k=5)
    for i in range(40):  # same hits; scores equal up to float rounding (gemm vs gemv)
        single = store.search(queries[i : i + 1], k=5)[0]
        assert [h.id for h in single] == [h.id for h in batched[i]]
        assert [h.score for h in single] == pytest.approx([h.score for h in batched[i]], abs=1e-6)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=40), st.integers(1, 45))
def test_top_k_stable_equals_a_full_stable_sort(values: list[int], k: int) -> None:
    scores = torch.tensor([values], dtype=torch.float32)
    expected_values, expected_indices = scores[0].sort(descending=True, stable=True)
    got_values, got_indices = top_k_stable(scores, k)
    assert got_values[0] == expected_values[:k].tolist()
    assert got_indices[0] == expected_indices[:k].tolist()


def test_equal_scores_come_in_insertion_order_even_across_the_cut() -> None:
    store = ExactVectorStore(dim=2, metric="inner_product")
    same = torch.tensor([[1.0, 0.0]])
    for name in ["z", "b", "y", "a", "x"]:  # insertion order, not alphabetical
        store.upsert([name], same)
    assert [h.id for h in store.search(same, k=3)[0]] == ["z", "b", "y"]
    store.upsert(["b"], same * 1.0)  # an upsert keeps the position
    assert [h.id for h in store.search(same, k=5)[0]] == ["z", "b", "y", "a", "x"]


def test_l2_scores_are_negated_squared_distances() -> None:
    store = ExactVectorStore(dim=2, metric="l2")
    store.upsert(["o", "p"], torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    hits = store.search(torch.tensor([[3.0, 0.0]]), k=2)[0]
    assert [(h.id, h.score) for h in hits] == [("o", -9.0), ("p", -16.0)]


def test_cosine_stores_unit_vectors() -> None:
    store = ExactVectorStore(dim=2, metric="cosine")
    store.upsert(["a"], torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(store.get_vectors(["a"]), torch.tensor([[0.6, 0.8]]))


# ------------------------------------------------------------------- filters


def test_filter_applies_before_ranking_so_k_results_come_back() -> None:
    store = filled(100)
    query = store.get_vectors(["v1"])  # its nearest neighbours are mostly not in g0
    hits = store.search(query, k=10, where={"group": "g0"})[0]
    assert len(hits) == 10
    assert all(h.metadata["group"] == "g0" for h in hits)


def test_filter_combines_keys_with_and_and_matches_typed_values() -> None:
    store = ExactVectorStore(dim=2)
    store.upsert(
        ["i", "f", "b", "s", "n"],
        torch.ones(5, 2),
        [{"x": 1}, {"x": 1.0}, {"x": True}, {"x": "1"}, {"x": None}],
    )
    query = torch.ones(1, 2)
    assert {h.id for h in store.search(query, 5, where={"x": 1})[0]} == {"i", "f"}
    assert {h.id for h in store.search(query, 5, where={"x": True})[0]} == {"b"}
    assert {h.id for h in store.search(query, 5, where={"x": "1"})[0]} == {"s"}
    assert {h.id for h in store.search(query, 5, where={"x": None})[0]} == {"n"}
    assert store.search(query, 5, where={"x": 1, "y": 2}) == [[]]
    assert store.search(query, 5, where={"unknown": "key"}) == [[]]


def test_replacing_metadata_updates_the_filter_index() -> None:
    store = filled(10)
    store.upsert(["v0"], unit(1, 8, seed=3), [{"group": "new"}])
    query = unit(1, 8)
    assert [h.id for h in store.search(query, 10, where={"group": "new"})[0]] == ["v0"]
    assert "v0" not in {h.id for h in store.search(query, 10, where={"parity": 0})[0]}


def test_hits_are_ordinary_validated_records() -> None:
    hit = filled(5).search(unit(1, 8), 1)[0][0]
    rebuilt = Hit(id=hit.id, score=hit.score, metadata=dict(hit.metadata))
    assert hit == rebuilt
    assert hit.model_dump() == rebuilt.model_dump()
    assert Hit.model_validate_json(hit.model_dump_json()) == hit


def test_hit_metadata_is_a_copy() -> None:
    store = filled(5)
    hit = store.search(unit(1, 8), 1)[0][0]
    hit.metadata["group"] = "tampered"
    assert store.get_metadata(hit.id)["group"] != "tampered"


# ------------------------------------------------------------------- tenants


def tenant_pair() -> tuple[ExactVectorStore, ExactVectorStore]:
    acme = ExactVectorStore(dim=4, metric="inner_product", tenant="acme")
    globex = acme.for_tenant("globex")
    secret = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    globex.upsert(["shared-id", "secret"], secret.repeat(2, 1) * 10, [{"tenant": "globex"}] * 2)
    acme.upsert(["shared-id"], torch.tensor([[0.0, 1.0, 0.0, 0.0]]), [{"tenant": "acme"}])
    return acme, globex


ATTACKS = [
    None,
    {"tenant": "globex"},
    {"__tenant__": "globex"},
    {"_tenant": "globex"},
    {"tenant_id": "globex"},
    {"namespace": "globex"},
    {"": "globex"},
    {"tenant": "globex", "__proto__": "x"},
    {"'; DROP TABLE entries; --": "globex"},
]


@pytest.mark.parametrize("where", ATTACKS, ids=[repr(a) for a in ATTACKS])
def test_a_tenant_can_never_see_another_tenants_entries(where: object) -> None:
    acme, _ = tenant_pair()
    probe = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # points straight at globex's secret
    try:
        results = acme.search(probe, k=100, where=where)  # type: ignore[arg-type]
    except InvalidInputError:
        return  # refusing the query is also safe
    for hits in results:
        assert all(h.metadata.get("tenant") == "acme" for h in hits), hits
        assert "secret" not in {h.id for h in hits}


def test_tenants_have_separate_ids_len_and_deletes() -> None:
    acme, globex = tenant_pair()
    assert (len(acme), len(globex)) == (1, 2)
    assert acme.ids() == ["shared-id"]
    assert globex.ids() == ["shared-id", "secret"]
    assert "secret" not in acme
    assert "secret" in globex
    with pytest.raises(NotFoundError):
        acme.delete(["secret"])
    with pytest.raises(NotFoundError):
        acme.get_vectors(["secret"])
    acme.delete(["shared-id"])
    assert len(acme) == 0
    assert globex.ids() == ["shared-id", "secret"]
    assert acme.search(torch.ones(1, 4), k=5) == [[]]


def test_crafted_ids_and_tenant_names_do_not_collide() -> None:
    a = ExactVectorStore(dim=2, tenant="a/b")
    b = a.for_tenant("a")
    a.upsert(["c"], torch.ones(1, 2))
    b.upsert(["b/c"], torch.ones(1, 2))
    assert a.ids() == ["c"]
    assert b.ids() == ["b/c"]
    with pytest.raises(InvalidInputError):
        a.for_tenant("")


def test_tenants_survive_save_and_load(tmp_path: Path) -> None:
    acme, _ = tenant_pair()
    acme.save(tmp_path / "store")
    loaded = ExactVectorStore.load(tmp_path / "store", tenant="acme")
    assert loaded.tenants() == ["acme", "globex"]
    probe = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    assert [h.id for h in loaded.search(probe, 10)[0]] == ["shared-id"]
    assert len(loaded.for_tenant("globex").search(probe, 10)[0]) == 2


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.search(torch.ones(1, 9), k=1), r"expected shape \(N, 8\), got \(1, 9\)"),
        (lambda s: s.search(torch.ones(8), k=1), "add a batch dimension"),
        (lambda s: s.search(torch.full((1, 8), float("nan")), k=1), "NaN or inf"),
        (lambda s: s.search(torch.ones(1, 8), k=0), "positive int, got int: 0"),
        (lambda s: s.search(torch.ones(1, 8), k=-3), "positive int"),
        (lambda s: s.search(torch.ones(1, 8), k=True), "positive int"),
        (lambda s: s.search([[1.0] * 8], k=1), "torch.Tensor"),
        (lambda s: s.search(torch.ones(1, 8), k=1, where={"x": [1]}), "metadata values"),
        (lambda s: s.upsert(["a"], torch.full((1, 8), float("inf"))), "NaN or inf"),
        (lambda s: s.upsert(["a", "b"], torch.ones(1, 8)), r"expected shape \(2, 8\)"),
        (lambda s: s.upsert(["a", "a"], torch.ones(2, 8)), "same id more than once"),
        (lambda s: s.upsert("ab", torch.ones(2, 8)), "sequence of string ids"),
        (lambda s: s.upsert([""], torch.ones(1, 8)), "non-empty string ids"),
        (lambda s: s.upsert(["a"], torch.zeros(1, 8)), "zero vector"),
        (lambda s: s.upsert(["a"], torch.ones(1, 8), [{"x": {"nested": 1}}]), "metadata values"),
        (lambda s: s.upsert(["a"], torch.ones(1, 8), [{"x": float("nan")}]), "finite"),
        (lambda s: s.upsert(["a"], torch.ones(1, 8), [{}, {}]), "2 metadata mappings for 1"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(call: object, message: str) -> None:
    store = filled(10)
    with pytest.raises(InvalidInputError, match=message):
        call(store)  # type: ignore[operator]
    assert len(store) == 10
    assert store.search(store.get_vectors(["v3"]), 1)[0][0].id == "v3"


def test_unknown_ids_raise_not_found_and_delete_nothing() -> None:
    store = filled(10)
    with pytest.raises(NotFoundError, match="nope"):
        store.delete(["v1", "nope"])
    assert len(store) == 10


def test_empty_store_gives_empty_results_and_checks_the_query() -> None:
    store = ExactVectorStore(dim=4)
    assert store.search(torch.ones(2, 4), k=3) == [[], []]
    with pytest.raises(InvalidInputError):
        store.search(torch.ones(1, 5), k=3)


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        ExactVectorStore(dim=0)
    with pytest.raises(ConfigError):
        ExactVectorStore(dim=4, metric="hamming")  # type: ignore[arg-type]
    assert ExactVectorStore.from_config({"dim": 3}).config == VectorStoreConfig(dim=3)


# --------------------------------------------------------------- persistence


@pytest.mark.parametrize("metric", METRICS)
def test_save_and_load_give_the_same_results(tmp_path: Path, metric: str) -> None:
    store = filled(60, metric=metric)
    store.delete(["v7"])
    store.save(tmp_path / "store")
    loaded = ExactVectorStore.load(tmp_path / "store")
    queries = unit(5, 8, seed=4)
    assert loaded.search(queries, 8) == store.search(queries, 8)
    assert loaded.search(queries, 8, where={"parity": 1}) == store.search(
        queries, 8, where={"parity": 1}
    )
    assert loaded.config == store.config
    assert loaded.ids() == store.ids()


def test_saved_metadata_is_a_real_sqlite_table(tmp_path: Path) -> None:
    filled(3).save(tmp_path / "store")
    rows = sqlite3.connect(tmp_path / "store" / "entries.sqlite").execute(
        "SELECT tenant, id, metadata FROM entries ORDER BY row"
    )
    assert [(t, i, json.loads(m)["group"]) for t, i, m in rows] == [
        ("default", "v0", "g0"),
        ("default", "v1", "g1"),
        ("default", "v2", "g2"),
    ]


def test_a_tampered_file_is_detected(tmp_path: Path) -> None:
    filled(3).save(tmp_path / "store")
    with open(tmp_path / "store" / "vectors.safetensors", "r+b") as handle:
        handle.seek(-4, os.SEEK_END)
        handle.write(b"\x00\x00\x80\x7f")
    with pytest.raises(IntegrityError, match="SHA-256"):
        ExactVectorStore.load(tmp_path / "store")


def test_loading_nothing_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        ExactVectorStore.load(tmp_path / "missing")


def save_in_the_first_layout(store: ExactVectorStore, directory: Path) -> None:
    """What the first release wrote: the same files, a manifest with no "format"."""
    from safetensors.torch import save_file

    directory.mkdir()
    save_file(
        {"vectors": store.get_vectors(store.ids()).contiguous()},
        str(directory / "vectors.safetensors"),
    )
    connection = sqlite3.connect(directory / "entries.sqlite")
    connection.execute(
        "CREATE TABLE entries (row INTEGER PRIMARY KEY, tenant TEXT NOT NULL, "
        "id TEXT NOT NULL, metadata TEXT NOT NULL, UNIQUE (tenant, id))"
    )
    connection.executemany(
        "INSERT INTO entries VALUES (?, ?, ?, ?)",
        [
            (row, store.tenant, id_, json.dumps(store.get_metadata(id_), sort_keys=True))
            for row, id_ in enumerate(store.ids())
        ],
    )
    connection.commit()
    connection.close()
    document = {"format": 1, "backend": "exact", "config": store.config.model_dump()}
    (directory / "config.json").write_text(json.dumps(document, indent=2))
    files = {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in ("vectors.safetensors", "entries.sqlite", "config.json")
    }
    (directory / "manifest.json").write_text(json.dumps({"sha256": files}, indent=2))


def test_a_store_saved_in_the_first_layout_still_loads(tmp_path: Path) -> None:
    store = filled(12, metric="l2")
    save_in_the_first_layout(store, tmp_path / "old")
    loaded = ExactVectorStore.load(tmp_path / "old")
    queries = unit(3, 8, seed=5)
    assert loaded.ids() == store.ids()
    assert loaded.config == store.config
    assert loaded.search(queries, 4, where={"parity": 0}) == store.search(
        queries, 4, where={"parity": 0}
    )


def test_a_tampered_file_of_the_first_layout_is_still_detected(tmp_path: Path) -> None:
    save_in_the_first_layout(filled(3), tmp_path / "old")
    (tmp_path / "old" / "config.json").write_text(
        json.dumps({"format": 1, "backend": "exact", "config": {"dim": 9}})
    )
    with pytest.raises(IntegrityError, match="SHA-256"):
        ExactVectorStore.load(tmp_path / "old")


def test_the_manifest_names_the_kind_and_the_config_keeps_its_first_format(
    tmp_path: Path,
) -> None:
    filled(3).save(tmp_path / "store")
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    config = json.loads((tmp_path / "store" / "config.json").read_text())
    assert manifest["format"] == "genarch.vector_store/1"
    assert set(manifest["sha256"]) == {"vectors.safetensors", "entries.sqlite", "config.json"}
    assert config == {"format": 1, "backend": "exact", "config": {"dim": 8, "metric": "cosine"}}


def test_a_save_of_another_kind_is_refused(tmp_path: Path) -> None:
    filled(3).save(tmp_path / "store")
    manifest_file = tmp_path / "store" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps({**manifest, "format": "genarch.gpt/1"}))
    with pytest.raises(IntegrityError, match="manifest.json does not match its SHA-256"):
        ExactVectorStore.load(tmp_path / "store")
    write_manifest(tmp_path / "store")  # consistent, so the kind check is what refuses it
    with pytest.raises(IntegrityError, match="not a 'genarch.vector_store/1'"):
        ExactVectorStore.load(tmp_path / "store")


def test_a_manifest_that_leaves_a_file_out_is_refused(tmp_path: Path) -> None:
    filled(3).save(tmp_path / "store")
    manifest_file = tmp_path / "store" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["sha256"]["entries.sqlite"]
    manifest_file.write_text(json.dumps(manifest))
    write_manifest(tmp_path / "store")  # consistent, so the store's own check is what refuses it
    with pytest.raises(IntegrityError, match="does not list"):
        ExactVectorStore.load(tmp_path / "store")


def test_a_config_and_keyword_fields_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        ExactVectorStore(VectorStoreConfig(dim=3), dim=4)


CHILD = textwrap.dedent(
    """
    import os, signal, sys, time, torch
    import genarch._io
    import pathlib
    from genarch.orchestration.vectorstore import ExactVectorStore

    target, mode = sys.argv[1], sys.argv[2]
    store = ExactVectorStore(dim=8, metric="inner_product")
    store.upsert(["old"], torch.ones(1, 8))
    store.save(target)                     # the previous, complete store
    store.upsert([f"new{i}" for i in range(500)], torch.randn(500, 8))

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "mid-write":                # killed while the new files are being written
        original = pathlib.Path.write_bytes
        def write_then_stall(self, data):
            written = original(self, data)
            if self.name == "entries.sqlite":  # vectors and entries are in the staging directory
                print("writing", flush=True)
                time.sleep(60)
            return written
        pathlib.Path.write_bytes = write_then_stall
    else:                                  # killed between the two renames of the swap
        real_replace = os.replace
        def replace_then_die(src, dst):
            real_replace(src, dst)
            die()
        genarch._io.os.replace = replace_then_die
    store.save(target)
    """
)


@pytest.mark.parametrize("mode", ["mid-write", "mid-swap"])
def test_a_process_killed_mid_save_leaves_the_previous_store_readable(
    tmp_path: Path, mode: str
) -> None:
    target = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    if mode == "mid-write":
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    if mode == "mid-swap":  # the old directory was moved aside, the new one never moved in
        assert not target.exists()
    loaded = ExactVectorStore.load(target)
    assert loaded.ids() == ["old"]
    assert [h.id for h in loaded.search(torch.ones(1, 8), k=5)[0]] == ["old"]
