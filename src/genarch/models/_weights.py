"""Checking saved weights against a model before the model is allocated.

A config names sizes; a saved ``model.safetensors`` holds tensors of some
shapes. :func:`check_saved_shapes` compares the two using only the file's
header (safetensors stores every tensor's shape in a small JSON header, read
without touching the data) and the shapes a model *would* have (built on
PyTorch's ``meta`` device, which allocates nothing). So a config that does not
match its weights — tampered, or of another model — fails with
:class:`~genarch.errors.IntegrityError` before gigabytes are allocated for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from genarch.errors import IntegrityError

__all__ = ["check_saved_shapes", "module_shapes", "saved_shapes"]

Shapes = dict[str, tuple[int, ...]]


def module_shapes(build: Callable[[], nn.Module]) -> Shapes:
    """The shape of every entry of the state dict of the module ``build()`` returns,
    built on the ``meta`` device (no memory is allocated, no weight initialised)."""
    with torch.device("meta"):
        module = build()
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


def saved_shapes(file: str | Path) -> Shapes:
    """The shape of every tensor in a safetensors file, read from its header only.

    Raises:
        IntegrityError: the file is not a readable safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118 - safe_open is no dict
    except (OSError, SafetensorError, ValueError, RuntimeError) as error:
        raise IntegrityError(f"cannot read the tensor shapes of {file}: {error}") from None


def check_saved_shapes(
    saved: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
    where: str,
    *,
    optional: frozenset[str] = frozenset(),
) -> None:
    """Refuse saved weights whose names or shapes are not the ones the config implies.

    Args:
        saved: name -> shape of the saved tensors.
        expected: name -> shape of the model's state dict.
        where: names the file for the message.
        optional: expected names that may be absent (a tied output layer).

    Raises:
        IntegrityError: a tensor is missing, unexpected or of another shape.
    """
    missing = sorted(set(expected) - set(saved) - optional)
    unexpected = sorted(set(saved) - set(expected))
    if missing or unexpected:
        raise IntegrityError(
            f"{where}: the weights are of another model (missing {missing[:4]}, "
            f"unexpected {unexpected[:4]})"
        )
    for name, shape in saved.items():
        if tuple(shape) != tuple(expected[name]):
            raise IntegrityError(
                f"{where}: {name} has shape {tuple(shape)}, "
                f"the config expects {tuple(expected[name])}"
            )
