"""The digits loader and the synthetic 2-D point sets."""

from __future__ import annotations

import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch.data.digits import load_digits, swiss_roll, two_moons
from genarch.errors import InvalidInputError, MissingDependencyError
from genarch.testing import assert_same

pytest.importorskip("sklearn")


def test_digits_are_normalised_images_split_per_class() -> None:
    digits = load_digits()
    assert digits.train.inputs.shape == (1438, 1, 8, 8)
    assert digits.test.inputs.shape == (
        359,
        1,
        8,
        8,
    )
    assert float(digits.train.inputs.min()) == -1.0
    assert float(digits.train.inputs.max()) == 1.0
    train_counts = torch.bincount(digits.train.labels, minlength=10)
    test_counts = torch.bincount(digits.test.labels, minlength=10)
    shares = test_counts.double() / (train_counts + test_counts).double()
    assert bool(((shares - 0.2).abs() < 0.01).all())


def test_the_normalizer_maps_images_back_to_the_original_pixel_values() -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    digits = load_digits()
    pixels = digits.normalizer.inverse(digits.train.inputs)
    original = {tuple(row) for row in torch.tensor(sklearn_digits().data).tolist()}
    assert all(tuple(row) in original for row in pixels.flatten(1).round().tolist()[:50])


@given(seed=st.integers(0, 3))
def test_the_split_is_a_function_of_the_seed_and_train_and_test_are_disjoint(seed: int) -> None:
    first, second = load_digits(seed=seed), load_digits(seed=seed)
    assert_same(first.test.inputs, second.test.inputs)
    train = {tuple(r) for r in first.train.inputs.flatten(1).tolist()}
    test = [tuple(r) for r in first.test.inputs.flatten(1).tolist()]
    assert len(train) + len(set(test)) <= 1797  # no image appears on both sides (duplicates aside)


def test_digits_can_be_upsampled_to_sixteen_pixels() -> None:
    digits = load_digits(image_size=16)
    assert digits.train.inputs.shape[1:] == (1, 16, 16)
    assert digits.image_size == 16
    assert float(digits.train.inputs.abs().max()) <= 1.0


def test_unsupported_sizes_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="8 or 16"):
        load_digits(image_size=12)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="test_fraction"):
        load_digits(test_fraction=1.5)


def test_without_scikit_learn_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingDependencyError, match=r"genarch\[datasets\]"):
        load_digits()


@pytest.mark.parametrize("make", [two_moons, swiss_roll])
@given(count=st.integers(2, 300), seed=st.integers(0, 100))
def test_point_sets_are_seeded_two_class_clouds(make, count: int, seed: int) -> None:
    points = make(count, seed=seed)
    assert points.inputs.shape == (count, 2)
    assert points.labels.shape == (count,)
    assert set(points.labels.tolist()) <= {0, 1}
    assert_same(make(count, seed=seed).inputs, points.inputs)
    assert float(points.inputs.abs().max()) < 3.0


def test_two_moons_without_noise_lie_on_two_half_circles() -> None:
    moons = two_moons(200, noise=0.0)
    raw = moons.inputs * torch.tensor([0.87, 0.5]) + torch.tensor([0.5, 0.25])
    upper = raw[moons.labels == 0]
    lower = raw[moons.labels == 1] - torch.tensor([1.0, 0.5])
    assert_same(upper.norm(dim=1), torch.ones(len(upper)), atol=1e-5)
    assert_same(lower.norm(dim=1), torch.ones(len(lower)), atol=1e-5)


def test_bad_point_set_arguments_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="count"):
        two_moons(1)
    with pytest.raises(InvalidInputError, match="noise"):
        swiss_roll(10, noise=-1)
