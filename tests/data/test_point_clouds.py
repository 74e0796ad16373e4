"""The synthetic 2-D point sets."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch.data.point_clouds import swiss_roll, two_moons
from genarch.errors import InvalidInputError
from genarch.testing import assert_same


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
