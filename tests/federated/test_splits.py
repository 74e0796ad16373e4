"""The client partitions: every sample once, the same split for the same seed, real skew."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch.errors import InvalidInputError
from genarch.federated import dirichlet_label_split, iid_split

LABELS = torch.arange(600) % 10


@given(
    clients=st.integers(1, 12),
    alpha=st.floats(0.05, 50.0),
    seed=st.integers(0, 2**31 - 1),
    classes=st.integers(1, 10),
)
def test_dirichlet_split_covers_every_sample_exactly_once(clients, alpha, seed, classes) -> None:
    labels = torch.arange(240) % classes
    parts = dirichlet_label_split(labels, clients, alpha=alpha, seed=seed, min_size=0)
    assert len(parts) == clients
    joined = torch.cat(parts)
    assert joined.dtype == torch.long
    assert torch.equal(joined.sort().values, torch.arange(240))


def test_dirichlet_split_is_deterministic_per_seed() -> None:
    first = dirichlet_label_split(LABELS, 5, alpha=0.3, seed=7)
    again = dirichlet_label_split(LABELS, 5, alpha=0.3, seed=7)
    other = dirichlet_label_split(LABELS, 5, alpha=0.3, seed=8)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def _classes_per_client(parts: list[torch.Tensor]) -> float:
    """Mean number of classes that make up at least 5% of a client's data."""
    counts = [torch.bincount(LABELS[p], minlength=10) for p in parts]
    return sum(int((c >= 0.05 * c.sum()).sum()) for c in counts) / len(counts)


def test_small_alpha_skews_labels_and_large_alpha_does_not() -> None:
    skewed = dirichlet_label_split(LABELS, 5, alpha=0.1, seed=0)
    balanced = dirichlet_label_split(LABELS, 5, alpha=1000.0, seed=0)
    assert _classes_per_client(skewed) < 5  # about 3 of the 10 classes per client
    assert _classes_per_client(balanced) == 10


def test_min_size_is_met_by_drawing_again() -> None:
    unconstrained = dirichlet_label_split(LABELS, 10, alpha=0.5, seed=3, min_size=0)
    constrained = dirichlet_label_split(LABELS, 10, alpha=0.5, seed=3, min_size=40)
    assert min(len(p) for p in unconstrained) < 40  # the first draw would not do
    assert min(len(p) for p in constrained) >= 40
    assert torch.equal(torch.cat(constrained).sort().values, torch.arange(600))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": LABELS.float()}, "labels as a 1-D integer tensor"),
        ({"labels": LABELS.reshape(60, 10)}, "labels as a 1-D integer tensor"),
        ({"num_clients": 0}, "num_clients"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"num_clients": 700}, "cannot give 700 clients"),
        # 40 samples, 20 clients, at least 2 each: only an exactly even draw would do
        ({"labels": torch.arange(40) % 2, "num_clients": 20, "min_size": 2}, "found no split"),
    ],
)
def test_dirichlet_split_rejects_bad_input(kwargs, match) -> None:
    arguments = {"labels": LABELS, "num_clients": 4, **kwargs}
    labels = arguments.pop("labels")
    clients = arguments.pop("num_clients")
    with pytest.raises(InvalidInputError, match=match):
        dirichlet_label_split(labels, clients, **arguments)


def test_iid_split_is_balanced_and_complete() -> None:
    parts = iid_split(103, 4, seed=1)
    assert sorted(len(p) for p in parts) == [25, 26, 26, 26]
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(103))
    assert all(torch.equal(a, b) for a, b in zip(parts, iid_split(103, 4, seed=1), strict=True))


def test_iid_split_rejects_more_clients_than_samples() -> None:
    with pytest.raises(InvalidInputError, match="num_clients"):
        iid_split(3, 4)
