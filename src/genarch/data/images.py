"""Image preprocessing with an exact inverse.

Generative image models train on normalised pixels — usually in [-1, 1], or
standardised per channel — and their outputs must be turned back into
images. :class:`ImageNormalizer` does both directions with the same numbers,
so ``inverse(transform(x)) == x`` up to float rounding.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Annotated, Literal, Self

import torch
from pydantic import Field, model_validator

from genarch._io import MANIFEST_FILE, readable_directory
from genarch.configured import Configured
from genarch.errors import IntegrityError, InvalidInputError
from genarch.persistence import HEADER_FILE, open_saved, reading, save_component
from genarch.protocols import PathLike
from genarch.schemas import Config
from genarch.validation import checked_items, describe

__all__ = ["ImageNormalizer", "ImageNormalizerConfig"]

_FORMAT = "genarch.image_normalizer/1"


class ImageNormalizerConfig(Config):
    """Settings of :class:`ImageNormalizer`.

    Attributes:
        mode: ``"range"`` maps ``[low, high]`` linearly onto ``[-1, 1]``;
            ``"standardize"`` subtracts a per-channel mean and divides by a
            per-channel standard deviation (learned with :meth:`ImageNormalizer.fit`).
        low, high: the input pixel range for ``"range"`` (e.g. 0 and 255, or 0 and 16
            for scikit-learn's digits).
        mean, std: per-channel statistics for ``"standardize"``; set by ``fit``.
    """

    mode: Literal["range", "standardize"] = "range"
    low: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    high: Annotated[float, Field(allow_inf_nan=False)] = 255.0
    mean: tuple[Annotated[float, Field(allow_inf_nan=False)], ...] | None = None
    std: tuple[Annotated[float, Field(allow_inf_nan=False)], ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.mode == "range" and not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.std is not None and self.mean is not None:
            if len(self.std) != len(self.mean):
                raise ValueError("mean and std need one value per channel each")
            if any(s <= 0 for s in self.std):
                raise ValueError(f"std must be positive, got {self.std}")
        return self


class ImageNormalizer(Configured[ImageNormalizerConfig]):
    """Normalises image batches of shape (N, C, H, W) and inverts the normalisation.

    Args:
        config: an :class:`ImageNormalizerConfig`; keyword arguments are
            shorthand for its fields.

    Examples:
        >>> normalizer = ImageNormalizer(low=0, high=16)
        >>> x = torch.tensor([[[[0.0, 8.0, 16.0]]]])
        >>> normalizer.transform(x).tolist()
        [[[[-1.0, 0.0, 1.0]]]]
        >>> torch.equal(normalizer.inverse(normalizer.transform(x)), x)
        True
    """

    def _check(self, images: object, where: str) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise InvalidInputError(
                f"{where} expected a tensor of shape (N, C, H, W), got {describe(images)}"
            )
        if images.ndim != 4:
            raise InvalidInputError(
                f"{where} expected shape (N, C, H, W), got {tuple(images.shape)}"
            )
        channels = images.shape[1]
        if self._config.mean is not None and len(self._config.mean) != channels:
            raise InvalidInputError(
                f"{where}: fitted for {len(self._config.mean)} channels, got images with {channels}"
            )
        if images.is_complex() or images.dtype == torch.bool:
            raise InvalidInputError(
                f"{where} expected real-valued pixels, got dtype {images.dtype}"
            )
        images = images.to(torch.float32) if not images.is_floating_point() else images
        finite = torch.isfinite(images)
        if not bool(finite.all()):
            index = tuple(int(i) for i in (~finite).nonzero()[0])
            raise InvalidInputError(
                f"{where} expected finite pixels, got {images[index].item()} at index {index} "
                f"(one of {int((~finite).sum())} non-finite values)"
            )
        return images

    def _statistics(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        config = self._config
        if config.mode == "range":
            half = (config.high - config.low) / 2
            return torch.tensor(config.low + half), torch.tensor(half)
        if config.mean is None or config.std is None:
            raise InvalidInputError("standardize mode needs statistics: call fit(images) first")
        shape = (1, -1, 1, 1)
        return (
            torch.tensor(config.mean, dtype=like.dtype).reshape(shape),
            torch.tensor(config.std, dtype=like.dtype).reshape(shape),
        )

    def fit(self, images: torch.Tensor) -> Self:
        """Learn per-channel mean and std (``"standardize"`` mode); returns ``self``."""
        images = self._check(images, "ImageNormalizer.fit")
        if self._config.mode == "standardize":
            mean = images.mean(dim=(0, 2, 3)).tolist()
            std = images.std(dim=(0, 2, 3)).clamp_min(1e-8).tolist()
            self._config = self.config.model_copy(update={"mean": tuple(mean), "std": tuple(std)})
        return self

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels to model space.

        Raises:
            InvalidInputError: not a ``(N, C, H, W)`` real tensor, a channel count
                other than the fitted one, or a NaN or infinite pixel (its index
                is named): it would pass through into training unnoticed.
        """
        images = self._check(images, "ImageNormalizer.transform")
        center, scale = self._statistics(images)
        return (images - center) / scale

    def inverse(self, images: torch.Tensor) -> torch.Tensor:
        """Model space back to pixels (clamped to ``[low, high]`` in ``"range"`` mode)."""
        images = self._check(images, "ImageNormalizer.inverse")
        center, scale = self._statistics(images)
        pixels = images * scale + center
        if self._config.mode == "range":
            pixels = pixels.clamp(self._config.low, self._config.high)
        return pixels

    def process(self, items: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Normalise a stream of image batches (the DataProcessor view)."""
        for batch in checked_items(items, torch.Tensor, where="ImageNormalizer.process"):
            yield self.transform(batch)

    def save(self, directory: PathLike) -> None:
        """Write ``config.json``, atomically (the fitted statistics are part of the config)."""
        save_component(directory, _FORMAT, config=self.config)

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Rebuild a normalizer saved with :meth:`save`.

        Also reads the layout of genarch 0.x before the format header: a
        ``config.json`` holding only the config's fields.

        Raises:
            NotFoundError: nothing is saved in ``directory``.
            IntegrityError: the saved file is corrupt or of another component.
        """
        try:
            saved = open_saved(directory, _FORMAT)
        except IntegrityError:
            legacy = _legacy_config(directory)
            if legacy is None:
                raise
            return cls(legacy)
        return cls(saved.config(ImageNormalizerConfig))


def _legacy_config(directory: PathLike) -> ImageNormalizerConfig | None:
    """The config of a save written before the format header existed, if it is one."""
    root = readable_directory(directory)
    if root is None or (root / MANIFEST_FILE).is_file():  # a manifest: saved with a header
        return None
    with reading(_FORMAT, root):
        document = json.loads((root / HEADER_FILE).read_text("utf-8"))
        if not isinstance(document, dict) or "format" in document:
            return None
        return ImageNormalizerConfig.parse(document)
