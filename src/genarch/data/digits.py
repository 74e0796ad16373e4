"""The handwritten digits, a small image data set that ships offline.

:func:`load_digits` returns the 8x8 handwritten digits bundled with
scikit-learn (1,797 images of 10 classes, pixel values 0..16; UCI "Optical
Recognition of Handwritten Digits"), split deterministically into train and
held-out test sets with every class in proportion, optionally upsampled to
16x16, and normalised to ``[-1, 1]`` with :class:`~genarch.data.ImageNormalizer`.
Needs the optional extra ``genarch[datasets]`` (scikit-learn); nothing is
downloaded — the data is part of scikit-learn's wheel.

The synthetic 2-D point clouds (:func:`~genarch.data.point_clouds.two_moons`,
:func:`~genarch.data.point_clouds.swiss_roll`) are in
:mod:`genarch.data.point_clouds`; both kinds of data come as :class:`LabelledData`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from genarch._deprecated import moved_module
from genarch.data.images import ImageNormalizer
from genarch.errors import InvalidInputError, missing_dependency
from genarch.schemas import Record

__all__ = ["DigitSplits", "LabelledData", "load_digits"]


class LabelledData(Record):
    """Inputs with one integer label each.

    Attributes:
        inputs: ``(N, ...)`` float32 tensor — images ``(N, 1, H, W)`` or points ``(N, 2)``.
        labels: ``(N,)`` int64 tensor.
    """

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def as_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, labels)``, the form the trainers and objectives take."""
        return self.inputs, self.labels

    def of_class(self, label: int) -> torch.Tensor:
        """The inputs labelled ``label``."""
        return self.inputs[self.labels == label]


class DigitSplits(Record):
    """The digits, split into training and held-out test images.

    Attributes:
        train: images for training (and the "real training digits" baseline).
        test: held-out images, for classifier accuracy and digits FID.
        normalizer: maps pixel values 0..16 to ``[-1, 1]``; ``inverse`` maps back.
        image_size: 8 or 16.
    """

    train: LabelledData
    test: LabelledData
    normalizer: ImageNormalizer
    image_size: int
    num_classes: int = 10


def load_digits(
    *,
    image_size: Literal[8, 16] = 8,
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2,
    seed: int = 0,
) -> DigitSplits:
    """Load scikit-learn's 8x8 digits as normalised image tensors, split per class.

    Args:
        image_size: 8 keeps the original pixels; 16 upsamples bilinearly.
        test_fraction: share of every class held out for testing.
        seed: the split's shuffle (same seed, same split).

    Returns:
        :class:`DigitSplits` with images of shape ``(N, 1, image_size, image_size)``
        in ``[-1, 1]`` and labels 0..9.

    Raises:
        MissingDependencyError: scikit-learn is not installed (``pip install 'genarch[datasets]'``).
        InvalidInputError: an unsupported size or fraction.

    Examples:
        >>> digits = load_digits()
        >>> tuple(digits.train.inputs.shape), tuple(digits.test.inputs.shape)
        ((1438, 1, 8, 8), (359, 1, 8, 8))
        >>> float(digits.train.inputs.min()), float(digits.train.inputs.max())
        (-1.0, 1.0)
    """
    if image_size not in (8, 16):
        raise InvalidInputError(f"image_size must be 8 or 16, got {image_size!r}")
    if not (isinstance(test_fraction, float | int) and 0 < test_fraction < 1):
        raise InvalidInputError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    try:
        from sklearn import datasets  # type: ignore[import-untyped]
    except ImportError:
        raise missing_dependency("sklearn", "datasets", "load_digits") from None
    bunch = datasets.load_digits()
    pixels = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)  # (1797, 1, 8, 8), 0..16
    labels = torch.tensor(bunch.target, dtype=torch.long)
    normalizer = ImageNormalizer(low=0.0, high=16.0)
    images = normalizer.transform(pixels)
    if image_size == 16:
        images = torch.nn.functional.interpolate(
            images, size=(16, 16), mode="bilinear", align_corners=False
        ).clamp(-1.0, 1.0)
    generator = torch.Generator().manual_seed(seed)
    train_index, test_index = [], []
    for label in range(10):  # stratified: each class split in the same proportion
        members = torch.nonzero(labels == label).squeeze(1)
        members = members[torch.randperm(members.numel(), generator=generator)]
        held_out = round(members.numel() * test_fraction)
        test_index.append(members[:held_out])
        train_index.append(members[held_out:])
    train = torch.cat(train_index).sort().values
    test = torch.cat(test_index).sort().values
    return DigitSplits(
        train=LabelledData(inputs=images[train], labels=labels[train]),
        test=LabelledData(inputs=images[test], labels=labels[test]),
        normalizer=normalizer,
        image_size=image_size,
    )


__getattr__ = moved_module(
    __name__, {"two_moons": "genarch.data.point_clouds", "swiss_roll": "genarch.data.point_clouds"}
)
