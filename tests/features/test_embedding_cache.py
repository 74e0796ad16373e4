"""CachedExtractor: re-indexing embeds only what changed; a changed model never reads old vectors."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from genarch.errors import IntegrityError, InvalidInputError
from genarch.features import HashingVectorizer
from genarch.features.embedding_cache import CachedExtractor, model_fingerprint
from genarch.testing import check_feature_extractor


class Counting:
    """A FeatureExtractor that records every text it embeds."""

    def __init__(self, dim: int = 4) -> None:
        self.seen: list[str] = []
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        self.seen += list(items)
        return torch.tensor(
            [[float(len(t)), float(sum(map(ord, t)) % 97), 1.0, 0.5][: self._dim] for t in items]
        )


def test_a_second_pass_embeds_only_the_changed_chunks(tmp_path: Path) -> None:
    corpus = [f"chunk number {i}" for i in range(50)]
    inner = Counting()
    with CachedExtractor(inner, tmp_path / "cache.db", fingerprint="m1") as cache:
        first = cache.extract(corpus)
    assert len(inner.seen) == 50
    changed = [*corpus[:48], "a new chunk", "chunk number 49 (edited)"]
    inner.seen.clear()
    with CachedExtractor(inner, tmp_path / "cache.db", fingerprint="m1") as cache:  # reopened
        second = cache.extract(changed)
        assert cache.stats.hits == 48
        assert cache.stats.misses == 2
        assert len(cache) == 52
    assert inner.seen == ["a new chunk", "chunk number 49 (edited)"]
    assert torch.equal(second[:48], first[:48])
    assert torch.equal(second, inner.extract(changed))


def test_repeats_in_one_call_are_embedded_once_and_order_is_kept(tmp_path: Path) -> None:
    inner = Counting()
    cache = CachedExtractor(inner, ":memory:", fingerprint="m")
    out = cache.extract(["b", "a", "b", "c", "a"])
    assert inner.seen == ["b", "a", "c"]
    assert torch.equal(out, inner.extract(["b", "a", "b", "c", "a"]))
    assert cache.extract([]).shape == (0, 4)


def test_a_changed_model_misses_and_prune_drops_the_old_vectors(tmp_path: Path) -> None:
    vectorizer = HashingVectorizer(dim=16)
    path = tmp_path / "cache.db"
    cache = CachedExtractor(vectorizer, path)
    cache.extract(["open a file", "sort a list"])
    assert model_fingerprint(HashingVectorizer(dim=16)) == cache.fingerprint
    other = CachedExtractor(HashingVectorizer(dim=16, lowercase=False), path)
    assert other.fingerprint != cache.fingerprint
    other.extract(["open a file"])
    assert other.stats.misses == 1  # never the other config's vector
    assert other.prune() == 2
    assert len(other) == 1
    cache.close()
    other.close()


def test_weights_change_the_fingerprint() -> None:
    model = torch.nn.Linear(3, 2)

    class Wrapper:
        def __init__(self) -> None:
            self.model = model

    before = model_fingerprint(Wrapper())
    with torch.no_grad():
        model.weight[0, 0] += 1e-6
    assert model_fingerprint(Wrapper()) != before


def test_it_passes_the_feature_extractor_kit(tmp_path: Path) -> None:
    check_feature_extractor(
        CachedExtractor(HashingVectorizer(dim=32), tmp_path / "kit.db"), ["a b", "c", "d e f"]
    )


def test_corrupt_rows_and_bad_input_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    cache = CachedExtractor(Counting(), path, fingerprint="m")
    cache.extract(["x"])
    cache.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE vectors SET vector = ?", (b"\0" * 3,))
    cache = CachedExtractor(Counting(), path, fingerprint="m")
    with pytest.raises(IntegrityError, match="expected dim 4"):
        cache.extract(["x"])
    with pytest.raises(InvalidInputError, match="list of str"):
        cache.extract("x")
    with pytest.raises(InvalidInputError, match=r"items\[1\]"):
        cache.extract(["a", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="FeatureExtractor"):
        CachedExtractor(object(), ":memory:")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="fingerprint"):
        CachedExtractor(Counting(), ":memory:", fingerprint="")
