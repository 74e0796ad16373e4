"""PNG pictures of generated images: sample grids and interpolation strips.

Images arrive as model outputs — float tensors ``(N, C, H, W)`` in ``[-1, 1]``
with 1 (grey) or 3 (RGB) channels — and are written as 8-bit PNGs, enlarged
with nearest-neighbour scaling so 8x8 digits stay crisp. Files are written
atomically. Needs Pillow (``pip install 'genarch[images]'``).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from genarch._io import atomic_write_bytes
from genarch.errors import InvalidInputError, missing_dependency
from genarch.validation import describe

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["grid_image", "save_grid", "save_strip"]


def _pillow() -> object:
    try:
        from PIL import Image
    except ImportError:
        raise missing_dependency("PIL", "images", "saving PNG pictures") from None
    return Image


def grid_image(
    images: torch.Tensor, *, columns: int | None = None, scale: int = 4, padding: int = 1
) -> Image:
    """Tile ``images`` into one picture, row by row, on a white background.

    Args:
        images: ``(N, C, H, W)`` with values in ``[-1, 1]`` (clamped), C = 1 or 3.
        columns: images per row (default: about a square).
        scale: each pixel becomes a ``scale x scale`` block.
        padding: pixels between images (before scaling).

    Raises:
        InvalidInputError: a tensor of another shape, or a non-positive layout value.
        MissingDependencyError: Pillow is not installed.

    Examples:
        >>> picture = grid_image(torch.zeros(6, 1, 8, 8), columns=3, scale=2)
        >>> picture.size, picture.mode
        ((56, 38), 'L')
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else describe(images)
        raise InvalidInputError(f"expected images of shape (N, 1 or 3, H, W), got {shape}")
    count, channels, height, width = images.shape
    if count == 0:
        raise InvalidInputError("expected at least one image, got an empty batch")
    columns = columns or math.ceil(math.sqrt(count))
    if columns < 1 or scale < 1 or padding < 0:
        raise InvalidInputError(
            f"need columns >= 1, scale >= 1, padding >= 0; got {columns}, {scale}, {padding}"
        )
    rows = math.ceil(count / columns)
    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    canvas = torch.full(
        (channels, rows * (height + padding) + padding, columns * (width + padding) + padding),
        255,
        dtype=torch.uint8,
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        canvas[:, top : top + height, left : left + width] = pixels[index]
    canvas = canvas.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    array = canvas[0].numpy() if channels == 1 else canvas.permute(1, 2, 0).contiguous().numpy()
    image_module = _pillow()
    return image_module.fromarray(array, mode="L" if channels == 1 else "RGB")  # type: ignore[attr-defined, no-any-return]


def save_grid(
    images: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    columns: int | None = None,
    scale: int = 4,
    padding: int = 1,
) -> Path:
    """Write :func:`grid_image` of ``images`` to ``path`` as a PNG (atomically); return the path.

    Examples:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "grid.png"
        >>> save_grid(torch.rand(4, 1, 8, 8) * 2 - 1, target).read_bytes()[:4]
        b'\\x89PNG'
    """
    picture = grid_image(images, columns=columns, scale=scale, padding=padding)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def save_strip(
    images: torch.Tensor, path: str | os.PathLike[str], *, scale: int = 4, padding: int = 1
) -> Path:
    """Write ``images`` side by side in one row (an interpolation strip) as a PNG."""
    count = images.shape[0] if isinstance(images, torch.Tensor) and images.ndim == 4 else None
    return save_grid(images, path, columns=count, scale=scale, padding=padding)
