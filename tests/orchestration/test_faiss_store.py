"""FaissVectorStore: the same protocol, checks and files as the exact store, faiss underneath."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genarch.errors import InvalidInputError, NotFoundError
from genarch.orchestration.vectorstore import ExactVectorStore
from genarch.testing import parametrize_with_checks, vector_store_checks

pytest.importorskip("faiss")

from genarch.orchestration.faiss_store import FaissVectorStore

METRICS = ["cosine", "inner_product", "l2"]


@parametrize_with_checks(
    [
        vector_store_checks(lambda dim, m=m: FaissVectorStore(dim=dim, metric=m), label=m)  # type: ignore[misc]
        for m in METRICS
    ]
)
def test_faiss_store_passes_the_conformance_kit(check) -> None:  # type: ignore[no-untyped-def]
    check()


def both(metric: str, n: int = 400, dim: int = 16) -> tuple[FaissVectorStore, ExactVectorStore]:
    vectors = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
    ids = [f"v{i}" for i in range(n)]
    metadata = [{"group": i % 3} for i in range(n)]
    stores = (FaissVectorStore(dim=dim, metric=metric), ExactVectorStore(dim=dim, metric=metric))  # type: ignore[arg-type]
    for store in stores:
        store.upsert(ids, vectors, metadata)
        store.delete(["v3", "v100"])
        store.upsert(["v5"], vectors[7:8] * 2, [{"group": 0}])
    return stores  # type: ignore[return-value]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("where", [None, {"group": 0}])
def test_faiss_and_exact_stores_agree(metric: str, where: dict[str, int] | None) -> None:
    faiss_store, exact = both(metric)
    queries = torch.randn(20, 16, generator=torch.Generator().manual_seed(1))
    for got, expected in zip(
        faiss_store.search(queries, 10, where=where),
        exact.search(queries, 10, where=where),
        strict=True,
    ):
        assert [h.id for h in got] == [h.id for h in expected]
        assert [h.score for h in got] == pytest.approx(
            [h.score for h in expected], rel=1e-5, abs=1e-4
        )
        assert [h.metadata for h in got] == [h.metadata for h in expected]


def test_faiss_tenants_are_isolated() -> None:
    acme = FaissVectorStore(dim=2, metric="inner_product", tenant="acme")
    other = acme.for_tenant("other")
    other.upsert(["secret"], torch.tensor([[10.0, 0.0]]), [{"tenant": "acme"}])
    acme.upsert(["mine"], torch.tensor([[0.0, 1.0]]))
    for where in (None, {"tenant": "acme"}, {"tenant": "other"}):
        hits = acme.search(torch.tensor([[1.0, 0.0]]), 5, where=where)[0]
        assert "secret" not in {h.id for h in hits}
    with pytest.raises(NotFoundError):
        acme.delete(["secret"])


def test_a_faiss_save_loads_into_the_exact_store_and_back(tmp_path: Path) -> None:
    faiss_store, exact = both("cosine")
    faiss_store.save(tmp_path / "store")
    queries = torch.randn(5, 16)
    assert [
        [h.id for h in r] for r in ExactVectorStore.load(tmp_path / "store").search(queries, 5)
    ] == [[h.id for h in r] for r in exact.search(queries, 5)]
    again = FaissVectorStore.load(tmp_path / "store")
    assert again.ids() == faiss_store.ids()
    assert torch.equal(again.get_vectors(["v5", "v9"]), faiss_store.get_vectors(["v5", "v9"]))


def test_faiss_store_refuses_bad_queries() -> None:
    store, _ = both("l2")
    with pytest.raises(InvalidInputError):
        store.search(torch.randn(1, 3), 1)
    with pytest.raises(InvalidInputError):
        store.search(torch.full((1, 16), float("nan")), 1)


def test_missing_faiss_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_faiss(name: str, *args: object, **kwargs: object) -> object:
        if name == "faiss":
            raise ImportError("no faiss here")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match=r"genarch\[faiss\]"):
        FaissVectorStore(dim=4)
