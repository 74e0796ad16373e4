"""The digits loader."""

from __future__ import annotations

import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch.data.digits import load_digits
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
