"""Vector stores under hostile input: no tenant leak, finite scores, safe paths, verified files."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from genarch._io import write_manifest
from genarch.errors import IntegrityError, InvalidInputError
from genarch.orchestration.entry_table import EntryTable
from genarch.orchestration.store_files import write_store
from genarch.orchestration.vector_validation import MAX_VECTOR_NORM, VectorStoreConfig
from genarch.orchestration.vectorstore import ExactVectorStore, StoreHandle

METRICS = ["cosine", "inner_product", "l2"]


def _faiss_store() -> type[StoreHandle]:
    pytest.importorskip("faiss")
    from genarch.orchestration.faiss_store import FaissVectorStore

    return FaissVectorStore


BACKENDS: dict[str, Callable[[], type[StoreHandle]]] = {
    "exact": lambda: ExactVectorStore,
    "faiss": _faiss_store,
}


def two_tenants(backend: str, metric: str) -> tuple[StoreHandle, StoreHandle]:
    """``acme`` and ``other`` on one storage; ``other`` holds a secret, stored last."""
    acme = BACKENDS[backend]()(dim=2, metric=metric, tenant="acme")  # type: ignore[call-arg]
    acme.upsert(["mine"], torch.tensor([[0.0, 1.0]]), [{"owner": "acme"}])
    other = acme.for_tenant("other")
    other.upsert(["secret"], torch.tensor([[1.0, 0.0]]), [{"owner": "other"}])
    return acme, other


# ------------------------------------------------------------ overflowing scores


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_huge_vectors_never_return_another_tenants_entry(backend: str, metric: str) -> None:
    acme, _ = two_tenants(backend, metric)
    huge = torch.tensor([[3e38, -3e38]])
    if metric == "cosine":
        acme.upsert(["huge"], huge)
    else:
        with pytest.raises(InvalidInputError, match=r"row 0 has norm .* at most"):
            acme.upsert(["huge"], huge)
    for query in ([[3e38, 3e38]], [[1.0, 1.0]], [[3e38, -3e38]], [[-1e18, 1e18]]):
        try:
            hits = acme.search(torch.tensor(query), 5)[0]
        except InvalidInputError as error:
            assert metric != "cosine"
            assert "at most" in str(error)
            continue
        assert {h.id for h in hits} <= {"mine", "huge"}
        assert all(h.metadata.get("owner") != "other" for h in hits)
        assert all(math.isfinite(h.score) for h in hits)


@pytest.mark.parametrize("metric", ["inner_product", "l2"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_scores_are_finite_at_the_norm_limit(backend: str, metric: str) -> None:
    store = BACKENDS[backend]()(dim=2, metric=metric)  # type: ignore[call-arg]
    edge = MAX_VECTOR_NORM * 0.999 / math.sqrt(2)
    store.upsert(["up", "down"], torch.tensor([[edge, edge], [-edge, -edge]]))
    for query in ([[edge, edge]], [[-edge, -edge]], [[edge, -edge]]):
        hits = store.search(torch.tensor(query), 2)[0]
        assert len(hits) == 2
        assert all(math.isfinite(h.score) for h in hits)
    with pytest.raises(InvalidInputError, match="at most 6.52e\\+18"):
        store.search(torch.tensor([[MAX_VECTOR_NORM * 1.01, 0.0]]), 1)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("scale", [3e38, 1e-30, 1e-44])
def test_cosine_keeps_the_direction_of_huge_and_tiny_vectors(backend: str, scale: float) -> None:
    store = BACKENDS[backend]()(dim=2, metric="cosine")  # type: ignore[call-arg]
    store.upsert(["v"], torch.tensor([[scale, scale]]))
    assert torch.allclose(store.get_vectors(["v"]), torch.tensor([[0.5**0.5, 0.5**0.5]]))
    (hit,) = store.search(torch.tensor([[scale, scale]]), 1)[0]
    assert hit.score == pytest.approx(1.0, abs=1e-6)


def test_a_zero_vector_under_cosine_is_still_refused() -> None:
    with pytest.raises(InvalidInputError, match="row 1 is a zero vector"):
        ExactVectorStore(dim=2).upsert(["a", "b"], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_the_entry_table_turns_no_foreign_or_missing_row_into_a_hit() -> None:
    table = EntryTable()
    table.assign("acme", ["mine"], [{}])
    table.assign("other", ["secret"], [{}])
    hits = table.hits([-1, 1, 2, 0, 0], [1.0, 1.0, 1.0, float("inf"), 0.5], "acme")
    assert [(h.id, h.score) for h in hits] == [("mine", 0.5)]


def test_faiss_no_result_label_is_no_row() -> None:
    store_type = _faiss_store()
    store = store_type(dim=2, metric="inner_product", tenant="acme")
    store.for_tenant("other").upsert(["secret"], torch.tensor([[1.0, 0.0]]))
    store.upsert(["mine"], torch.tensor([[0.0, 1.0]]))
    index = store._backend.index  # type: ignore[attr-defined]
    real_search = index.search

    def search_finding_nothing(queries, k, params=None):  # type: ignore[no-untyped-def]
        distances, labels = real_search(queries, k, params=params)
        labels[:] = -1  # what faiss answers when no score can be ranked
        return distances, labels

    index.search = search_finding_nothing
    assert store._backend.top_k(torch.tensor([[1.0, 1.0]]), None, 2) == ([[]], [[]])  # type: ignore[attr-defined]
    assert store.search(torch.tensor([[1.0, 1.0]]), 2) == [[]]


def test_a_saved_store_with_overflowing_vectors_is_refused(tmp_path: Path) -> None:
    table = EntryTable()
    table.assign("default", ["a"], [{}])
    config = VectorStoreConfig(dim=2, metric="l2")
    write_store(tmp_path / "s", config, "exact", torch.tensor([[3e38, 3e38]]), table)
    with pytest.raises(IntegrityError, match=r"vectors\.safetensors: tensor 'vectors' row 0"):
        ExactVectorStore.load(tmp_path / "s")


# ------------------------------------------------------------ paths inside SQLite URIs

HOSTILE_NAMES = [
    "%61",
    "x#y",
    "x?y",
    "x?mode=rwc",
    "sp ace",
    "ünïcødé-名前",
    "%2e%2e",
    "a%3Fb",
    "b%00",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_directory_names_round_trip_and_leave_no_stray_files(
    tmp_path: Path, name: str
) -> None:
    decoy = ExactVectorStore(dim=2)
    decoy.upsert(["decoy"], torch.tensor([[1.0, 0.0]]), [{"who": "decoy"}])
    decoy.save(tmp_path / "a")  # what "%61" would name once URL-decoded
    decoy.save(tmp_path / "x")  # what "x#y" / "x?y" would name once truncated
    store = ExactVectorStore(dim=2)
    store.upsert(["mine"], torch.tensor([[0.0, 1.0]]), [{"who": "me"}])
    store.save(tmp_path / name)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    loaded = ExactVectorStore.load(tmp_path / name)
    assert loaded.ids() == ["mine"]
    assert loaded.get_metadata("mine") == {"who": "me"}
    assert torch.equal(loaded.get_vectors(["mine"]), store.get_vectors(["mine"]))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_hostile_names_in_the_parent_directory_are_safe_too(tmp_path: Path) -> None:
    parent = tmp_path / "p%61r#e?n t"
    store = ExactVectorStore(dim=2)
    store.upsert(["mine"], torch.tensor([[0.0, 1.0]]))
    store.save(parent / "store")
    assert ExactVectorStore.load(parent / "store").ids() == ["mine"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [parent.name]


# ------------------------------------------------------------ malformed files


def saved(tmp_path: Path) -> Path:
    store = ExactVectorStore(dim=2)
    store.upsert(["a", "b"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [{"k": 1}, {}])
    store.save(tmp_path / "store")
    return tmp_path / "store"


def replace_file(directory: Path, name: str, data: bytes) -> None:
    """Put ``data`` in ``name`` and make every checksum agree, as a careful attacker would."""
    (directory / name).write_bytes(data)
    if name != "manifest.json":
        manifest = json.loads((directory / "manifest.json").read_text())
        manifest["sha256"][name] = hashlib.sha256(data).hexdigest()
        (directory / "manifest.json").write_text(json.dumps(manifest))
    write_manifest(directory)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[]", r"manifest\.json: expected a JSON object .* got an array"),
        (b'"x"', r"manifest\.json: expected a JSON object .* got a string"),
        (b"null", r"manifest\.json: expected a JSON object .* got null"),
        (b"\xff\xfe", r"manifest\.json is not valid UTF-8 JSON"),
        (b"[" * 200_000, r"manifest\.json is not valid UTF-8 JSON"),
        (b'{"format": "genarch.vector_store/1"}', r"manifest\.json: field 'sha256'"),
        (b'{"format": "genarch.vector_store/1", "sha256": []}', r"manifest\.json: field 'sha256'"),
        (
            b'{"format": "genarch.vector_store/1", "sha256": {"vectors.safetensors": 1, '
            b'"entries.sqlite": 2, "config.json": 3}}',
            r"manifest\.json: field 'sha256'",
        ),
    ],
)
def test_a_malformed_manifest_is_an_integrity_error_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    directory = saved(tmp_path)
    replace_file(directory, "manifest.json", content)
    with pytest.raises(IntegrityError, match=message):
        ExactVectorStore.load(directory)


def test_a_manifest_cannot_make_the_loader_read_other_files(tmp_path: Path) -> None:
    directory = saved(tmp_path)
    (tmp_path / "outside").write_text("secret")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["sha256"]["../outside"] = hashlib.sha256(b"secret").hexdigest()
    replace_file(directory, "manifest.json", json.dumps(manifest).encode())
    with pytest.raises(IntegrityError, match=r"field 'sha256' does not list"):
        ExactVectorStore.load(directory)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[]", r"config\.json: expected a JSON object, got an array"),
        (b'{"format": 2, "config": {"dim": 2}}', r"config\.json: field 'format' is 2"),
        (b'{"format": 1}', r"config\.json: field 'config' is missing"),
        (b'{"format": 1, "config": []}', r"config\.json: field 'config' is invalid"),
        (b'{"format": 1, "config": {"dim": "x"}}', r"config\.json: field 'config' is invalid"),
        (b'{"format": 1, "config": {"dim": 3}}', r"vectors\.safetensors: tensor 'vectors'"),
        (b"\xff", r"config\.json is not valid UTF-8 JSON"),
        (b"[" * 200_000, r"config\.json is not valid UTF-8 JSON"),
    ],
)
def test_a_malformed_config_is_an_integrity_error_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    directory = saved(tmp_path)
    replace_file(directory, "config.json", content)
    with pytest.raises(IntegrityError, match=message):
        ExactVectorStore.load(directory)


def test_a_vectors_file_without_its_tensor_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save

    directory = saved(tmp_path)
    replace_file(directory, "vectors.safetensors", save({"other": torch.zeros(2, 2)}))
    with pytest.raises(IntegrityError, match=r"vectors\.safetensors: tensor 'vectors' is missing"):
        ExactVectorStore.load(directory)
    replace_file(directory, "vectors.safetensors", b"not safetensors")
    with pytest.raises(IntegrityError, match=r"vectors\.safetensors is not a readable"):
        ExactVectorStore.load(directory)


def entries_with(rows: list[tuple[object, object, object, object]]) -> bytes:
    """An entry table without the schema's constraints, holding ``rows``."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE entries (row, tenant, id, metadata)")
    connection.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", rows)
    connection.commit()
    data = connection.serialize()
    connection.close()
    return data


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(0, None, "a", "{}"), (1, "t", "b", "{}")], r"row 0: field 'tenant'"),
        ([(0, "t", "", "{}"), (1, "t", "b", "{}")], r"row 0: field 'id'"),
        ([(0, "t", "a", "{}"), (1, "t", "a", "{}")], r"row 1: id 'a' repeats"),
        ([(0, "t", "a", "[]"), (1, "t", "b", "{}")], r"row 0: field 'metadata' is invalid"),
        ([(0, "t", "a", 7), (1, "t", "b", "{}")], r"row 0: field 'metadata' must be JSON text"),
        ([(0, "t", "a", '{"x": NaN}'), (1, "t", "b", "{}")], r"row 0: field 'metadata'"),
        ([(0, "t", "a", "[" * 100_000), (1, "t", "b", "{}")], r"row 0: field 'metadata'"),
        ([(0, "t", "a", "{}"), (5, "t", "b", "{}")], r"rows are not contiguous"),
    ],
)
def test_a_malformed_entry_table_is_an_integrity_error_naming_the_row_and_field(
    tmp_path: Path, rows: list[tuple[object, object, object, object]], message: str
) -> None:
    directory = saved(tmp_path)
    replace_file(directory, "entries.sqlite", entries_with(rows))
    with pytest.raises(IntegrityError, match=r"entries\.sqlite.*" + message):
        ExactVectorStore.load(directory)


def test_an_entry_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    directory = saved(tmp_path)
    replace_file(directory, "entries.sqlite", b"garbage" * 100)
    with pytest.raises(IntegrityError, match=r"entries\.sqlite is not a readable"):
        ExactVectorStore.load(directory)
