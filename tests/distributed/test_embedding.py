"""RayIndexBuilder: chunks embedded on Ray actors give the local build's store.

The local build is ``DenseRetriever(extractor, ExactVectorStore(...)).add(chunks)``
then ``save``; the distributed one must hold the same ids, metadata and
vectors in the same order, so searches return the same hits.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from genarch import Chunk, ConfigError, IntegrityError, InvalidInputError
from genarch.data import Chunker, python_docs
from genarch.distributed.embedding import RayIndexBuilder
from genarch.features import HashingVectorizer, TfidfVectorizer
from genarch.orchestration.retrievers import DenseRetriever
from genarch.orchestration.vectorstore import ExactVectorStore
from ray_faults import kill_me, kills, start_killer


class KilledOnce:
    """A HashingVectorizer whose actor is ``ray.kill``-ed on its first shard batch.

    The ``killer`` actor remembers that it killed, so the restarted actor runs on.
    """

    def __init__(self, killer: Any) -> None:
        self.inner = HashingVectorizer(dim=256)
        self.killer = killer

    @property
    def dim(self) -> int:
        return self.inner.dim

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        if len(items) > 1:  # a shard's batch, not the one-text check
            kill_me(self.killer)
        return self.inner.extract(items)


@pytest.fixture(scope="module")
def ray(local_ray: Any) -> Any:
    """The session's Ray; this module's classes travel to the workers by value."""
    local_ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return local_ray


@pytest.fixture(scope="module")
def chunks() -> list[Chunk]:
    docs = python_docs()[:12]
    return list(Chunker(max_tokens=96, overlap_tokens=8).process(docs))


def _local_store(extractor: Any, chunks: list[Chunk], metric: str, path: Path) -> ExactVectorStore:
    store = ExactVectorStore(dim=extractor.dim, metric=metric)
    DenseRetriever(extractor, store, batch_size=16).add(chunks)
    store.save(path)
    return ExactVectorStore.load(path)


def _assert_same_store(
    got: ExactVectorStore, want: ExactVectorStore, queries: torch.Tensor
) -> None:
    ids = want.ids()
    assert got.ids() == ids
    assert [got.get_metadata(i) for i in ids] == [want.get_metadata(i) for i in ids]
    assert torch.equal(got.get_vectors(ids), want.get_vectors(ids))
    assert got.search(queries, k=5) == want.search(queries, k=5)


def test_the_store_equals_the_local_build(ray: Any, chunks: list[Chunk], tmp_path: Path) -> None:
    # a fitted extractor: its state reaches the actors as its saved files
    extractor = TfidfVectorizer().fit([c.text for c in chunks])
    build = RayIndexBuilder(workers=2, shard_size=32, batch_size=16).build(
        chunks, extractor, tmp_path / "ray", metric="inner_product"
    )
    assert (build.chunks, build.rebuild) == (len(chunks), "saved")
    assert build.shards == -(-len(chunks) // 32) >= 3  # both actors built some
    want = _local_store(extractor, chunks, "inner_product", tmp_path / "local")
    queries = extractor.extract(["How do I open a file?", "the with statement", chunks[5].text])
    _assert_same_store(ExactVectorStore.load(tmp_path / "ray"), want, queries)


def test_an_actor_killed_mid_build_is_restarted_and_the_store_is_unchanged(
    ray: Any, chunks: list[Chunk], tmp_path: Path
) -> None:
    killer = start_killer(ray)
    extractor = KilledOnce(killer)
    builder = RayIndexBuilder(
        workers=1, shard_size=32, batch_size=16, max_restarts=2, max_task_retries=2
    )
    build = builder.build(chunks, extractor, tmp_path / "ray")
    assert build.rebuild == "pickle"
    assert kills(ray, killer) == 1
    want = _local_store(extractor.inner, chunks, "cosine", tmp_path / "local")
    queries = extractor.inner.extract(["classes and instances", chunks[3].text])
    _assert_same_store(ExactVectorStore.load(tmp_path / "ray"), want, queries)


def test_an_extractor_that_loses_state_when_rebuilt_is_refused(
    ray: Any, chunks: list[Chunk], tmp_path: Path
) -> None:
    fitted = TfidfVectorizer().fit([c.text for c in chunks])  # from_config gives it unfitted
    builder = RayIndexBuilder(workers=1, shard_size=64, batch_size=16, rebuild="config")
    with pytest.raises(IntegrityError, match=r"rebuild='config'.*lost state"):
        builder.build(chunks, fitted, tmp_path / "ray")
    assert not (tmp_path / "ray").exists()


def test_bad_input_is_refused_before_any_work(chunks: list[Chunk], tmp_path: Path) -> None:
    builder = RayIndexBuilder(workers=1, shard_size=32, batch_size=16)
    extractor = HashingVectorizer(dim=64)
    with pytest.raises(ConfigError, match=r"shard_size \(30\) must be a multiple of batch_size"):
        RayIndexBuilder(shard_size=30, batch_size=16)
    with pytest.raises(InvalidInputError, match="expected a FeatureExtractor"):
        builder.build(chunks, "minilm", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="backend 'exact' or 'faiss'"):
        builder.build(chunks, extractor, tmp_path, backend="annoy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rebuild='saved' needs"):
        RayIndexBuilder(rebuild="saved").build(chunks, extractor, tmp_path / "x")


def test_a_repeated_chunk_id_is_refused(chunks: list[Chunk], tmp_path: Path) -> None:
    builder = RayIndexBuilder(workers=1, shard_size=32, batch_size=16)
    with pytest.raises(InvalidInputError, match=f"chunk id {chunks[0].id!r} more than once"):
        builder.build([*chunks[:3], chunks[0]], HashingVectorizer(dim=64), tmp_path / "x")


def test_no_chunks_give_an_empty_store(tmp_path: Path) -> None:
    build = RayIndexBuilder().build([], HashingVectorizer(dim=8), tmp_path / "empty")
    assert (build.chunks, build.shards) == (0, 0)
    assert len(ExactVectorStore.load(tmp_path / "empty")) == 0
