"""Synthetic 2-D point clouds drawn from a seed, for tests that must run in seconds.

:func:`two_moons` and :func:`swiss_roll` return
:class:`~genarch.data.digits.LabelledData`: points of shape ``(N, 2)`` with one
integer label each.
"""

from __future__ import annotations

import math

import torch

from genarch.data.digits import LabelledData
from genarch.errors import InvalidInputError

__all__ = ["swiss_roll", "two_moons"]


def _check_points(count: int, noise: float, where: str) -> None:
    if not (isinstance(count, int) and count >= 2):
        raise InvalidInputError(f"{where} expected count >= 2, got {count!r}")
    if not (isinstance(noise, float | int) and noise >= 0):
        raise InvalidInputError(f"{where} expected noise >= 0, got {noise!r}")


def two_moons(count: int = 512, *, noise: float = 0.05, seed: int = 0) -> LabelledData:
    """Two interleaved half circles in 2-D, labelled 0 and 1, roughly centred and unit-scaled.

    Examples:
        >>> moons = two_moons(100, seed=1)
        >>> tuple(moons.inputs.shape), sorted(set(moons.labels.tolist()))
        ((100, 2), [0, 1])
    """
    _check_points(count, noise, "two_moons")
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 2
    angle = torch.rand(count, generator=generator) * math.pi
    upper = torch.stack([angle.cos(), angle.sin()], dim=1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], dim=1)
    points = torch.where(labels[:, None] == 0, upper, lower)
    points = points + noise * torch.randn(count, 2, generator=generator)
    points = (points - torch.tensor([0.5, 0.25])) / torch.tensor([0.87, 0.5])
    return LabelledData(inputs=points.float(), labels=labels)


def swiss_roll(count: int = 512, *, noise: float = 0.05, seed: int = 0) -> LabelledData:
    """A 2-D spiral (the swiss roll seen from its end), scaled to about ``[-1, 1]``;
    the label says which of two halves of the spiral a point lies on.

    Examples:
        >>> roll = swiss_roll(64)
        >>> bool(roll.inputs.abs().max() < 1.5)
        True
    """
    _check_points(count, noise, "swiss_roll")
    generator = torch.Generator().manual_seed(seed)
    turn = 1.5 * math.pi * (1 + 2 * torch.rand(count, generator=generator))
    points = torch.stack([turn * turn.cos(), turn * turn.sin()], dim=1) / (4.5 * math.pi)
    points = points + noise * torch.randn(count, 2, generator=generator)
    labels = (turn > 3 * math.pi).long()
    return LabelledData(inputs=points.float(), labels=labels)
