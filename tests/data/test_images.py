"""ImageNormalizer: into model space and back, exactly."""

from __future__ import annotations

import pytest
import torch

from genarch import ConfigError, InvalidInputError
from genarch.data import ImageNormalizer
from genarch.testing import data_processor_checks, parametrize_with_checks

IMAGES = torch.randint(0, 17, (6, 1, 8, 8)).float()
RGB = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 255


@parametrize_with_checks(
    [
        data_processor_checks(ImageNormalizer(low=0, high=16), [IMAGES, IMAGES[:2]], label="range"),
        data_processor_checks(
            ImageNormalizer(mode="standardize").fit(RGB), [RGB], label="standardize"
        ),
    ]
)
def test_image_normalizer_conforms(check):
    check()


def test_range_mode_maps_onto_minus_one_one_and_back():
    normalizer = ImageNormalizer(low=0, high=16)
    scaled = normalizer.transform(IMAGES)
    assert scaled.min() >= -1
    assert scaled.max() <= 1
    assert torch.allclose(normalizer.inverse(scaled), IMAGES)


def test_standardize_mode_learns_per_channel_statistics():
    normalizer = ImageNormalizer(mode="standardize").fit(RGB)
    standardized = normalizer.transform(RGB)
    assert torch.allclose(standardized.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(standardized.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)
    assert torch.allclose(normalizer.inverse(standardized), RGB, atol=1e-3)


def test_inverse_clamps_model_outputs_to_the_pixel_range():
    assert ImageNormalizer(low=0, high=16).inverse(torch.full((1, 1, 2, 2), 3.0)).max() == 16


def test_bad_input_and_config_are_refused():
    with pytest.raises(ConfigError):
        ImageNormalizer(low=5, high=1)
    with pytest.raises(InvalidInputError, match=r"\(N, C, H, W\)"):
        ImageNormalizer().transform(torch.zeros(8, 8))
    with pytest.raises(InvalidInputError, match="fit"):
        ImageNormalizer(mode="standardize").transform(RGB)
    with pytest.raises(InvalidInputError, match="3 channels"):
        ImageNormalizer(mode="standardize").fit(RGB).transform(IMAGES)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("method", ["transform", "fit", "inverse"])
def test_non_finite_pixels_are_invalid_input_naming_their_index(method: str, value: float) -> None:
    images = torch.zeros(2, 1, 3, 3)
    images[1, 0, 2, 1] = value
    with pytest.raises(InvalidInputError, match=r"finite pixels.*index \(1, 0, 2, 1\)"):
        getattr(ImageNormalizer(), method)(images)


@pytest.mark.parametrize("field", [{"low": float("-inf")}, {"high": float("nan")}])
def test_non_finite_normalizer_settings_are_config_errors(field: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ImageNormalizer(**field)
