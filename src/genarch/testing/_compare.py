"""Structural equality for results that hold tensors, arrays and records."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

__all__ = ["assert_same", "same"]


def assert_same(actual: Any, expected: Any, *, atol: float = 0.0, path: str = "result") -> None:
    """Assert two values are equal, looking inside records, mappings and sequences.

    Tensors and arrays must have the same shape and dtype and agree within
    ``atol`` (exactly, by default); floats likewise. NaNs equal NaNs.

    Raises:
        AssertionError: naming the first place where they differ.
    """
    if isinstance(expected, torch.Tensor) or isinstance(actual, torch.Tensor):
        _assert_arrays(actual, expected, atol, path)
        return
    if isinstance(expected, np.ndarray) or isinstance(actual, np.ndarray):
        _assert_arrays(
            torch.from_numpy(np.asarray(actual)), torch.from_numpy(np.asarray(expected)), atol, path
        )
        return
    if isinstance(expected, BaseModel):
        if type(actual) is not type(expected):
            raise AssertionError(
                f"{path}: expected {type(expected).__name__}, got {type(actual).__name__}"
            )
        for name in type(expected).model_fields:
            assert_same(
                getattr(actual, name), getattr(expected, name), atol=atol, path=f"{path}.{name}"
            )
        return
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping) or set(actual) != set(expected):
            got = sorted(map(str, actual)) if isinstance(actual, Mapping) else type(actual).__name__
            raise AssertionError(f"{path}: expected keys {sorted(map(str, expected))}, got {got}")
        for key in expected:
            assert_same(actual[key], expected[key], atol=atol, path=f"{path}[{key!r}]")
        return
    if isinstance(expected, list | tuple):
        if not isinstance(actual, list | tuple) or len(actual) != len(expected):
            size = len(actual) if isinstance(actual, list | tuple) else type(actual).__name__
            raise AssertionError(f"{path}: expected a sequence of {len(expected)}, got {size}")
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, atol=atol, path=f"{path}[{index}]")
        return
    if isinstance(expected, float) and isinstance(actual, int | float):
        if math.isnan(expected) and math.isnan(actual):
            return
        if abs(actual - expected) > atol or (atol == 0 and actual != expected):
            raise AssertionError(f"{path}: expected {expected!r}, got {actual!r}")
        return
    if actual != expected:
        raise AssertionError(f"{path}: expected {_short(expected)}, got {_short(actual)}")


def _assert_arrays(actual: Any, expected: Any, atol: float, path: str) -> None:
    if not isinstance(actual, torch.Tensor) or not isinstance(expected, torch.Tensor):
        raise AssertionError(
            f"{path}: expected a tensor, got {type(actual).__name__} and {type(expected).__name__}"
        )
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        raise AssertionError(
            f"{path}: expected {tuple(expected.shape)} {expected.dtype}, "
            f"got {tuple(actual.shape)} {actual.dtype}"
        )
    a, e = actual.detach().cpu(), expected.detach().cpu()
    if a.is_floating_point() or a.is_complex():
        if not torch.allclose(a, e, rtol=0.0, atol=atol, equal_nan=True):
            difference = (a - e).abs().nan_to_num(0.0).max().item()
            raise AssertionError(f"{path}: tensors differ by up to {difference:.3g} (atol={atol})")
    elif not torch.equal(a, e):
        raise AssertionError(f"{path}: integer tensors differ")


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 120 else shown[:117] + "..."


def same(actual: Any, expected: Any, *, atol: float = 0.0) -> bool:
    """True when :func:`assert_same` would pass."""
    try:
        assert_same(actual, expected, atol=atol)
    except AssertionError:
        return False
    return True
